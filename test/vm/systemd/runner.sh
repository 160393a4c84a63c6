#!/bin/bash
# vordr-test.service (systemd flavor, test/vm/systemd.sh): runs as root under
# the VM's systemd once vordr.service has started. Runs node --test on
# test/vm/systemd/*.test.mjs (or $VORDR_TESTS), stops vordr.service and
# unloads the module, and leaves in /mnt/out what test/vm/run.sh judges:
# tap.txt, dmesg.txt, status ("tests=N insmod=N rmmod=N": insmod is whether
# the boot loaded the module), boot-seconds; and for reading: journal.txt,
# units.txt, boot.txt (systemd-analyze). The unit powers the VM off after.
set -u
out=/mnt/out
# shellcheck disable=SC1091
source "$out/vordr.env"
export VORDR_REPO VORDR_FLAVOR VORDR_KO VORDR_MODULE VORDR_SYSD_RULES
say() { echo "vordr-runner: $*"; }
t0=$(cut -d' ' -f1 /proc/uptime)
say "tests start at ${t0}s after kernel start"
echo "$t0" >"$out/boot-seconds"
# Boot times from systemd's own timestamps (systemd-analyze time and blame
# wait for the boot to finish, which includes this unit).
mono() { local v; v=$(systemctl show -p "$2" --value "$1" 2>/dev/null); echo "$(( ${v:-0} / 1000 ))"; }
{
  echo "systemd started:          $(( $(systemctl show -p UserspaceTimestampMonotonic --value) / 1000 )) ms after kernel start"
  echo "units loaded, boot queued: $(( $(systemctl show -p UnitsLoadFinishTimestampMonotonic --value) / 1000 )) ms"
  echo "basic.target reached:     $(mono basic.target ActiveEnterTimestampMonotonic) ms"
  echo "vordr.service active:     $(mono vordr.service ActiveEnterTimestampMonotonic) ms"
  echo "tests start:              ${t0} s"
} >"$out/boot.txt" 2>&1
cat "$out/boot.txt"

insmod_rc=0
if [[ -d /sys/module/$VORDR_MODULE ]]; then
  say "module loaded by the boot: $(grep "^$VORDR_MODULE " /proc/modules)"
else
  say "the boot did not load $VORDR_MODULE"
  insmod_rc=95
fi

cd "$VORDR_REPO" || exit 1
if [[ -n ${VORDR_TESTS:-} ]]; then
  read -r -a files <<<"$VORDR_TESTS"
else
  files=(test/vm/systemd/*.test.mjs)
fi
say "running ${#files[@]} test file(s): ${files[*]}"
say "----- node --test begin -----"
node --test --test-reporter=tap --test-concurrency=1 "${files[@]}" </dev/null 2>&1 | tee "$out/tap.txt"
tests_rc=${PIPESTATUS[0]}
say "----- node --test end (exit $tests_rc) -----"

systemctl list-units --all --no-pager >"$out/units.txt" 2>&1
journalctl -b --no-pager -o short-monotonic >"$out/journal.txt" 2>&1

rmmod_rc=0
systemctl stop vordr.service
if [[ -d /sys/module/$VORDR_MODULE ]]; then
  rmmod "$VORDR_MODULE" || rmmod_rc=$?
  [[ $rmmod_rc == 0 && -d /sys/module/$VORDR_MODULE ]] && rmmod_rc=97
  [[ $rmmod_rc == 0 ]] && say "module unloaded" || say "rmmod $VORDR_MODULE FAILED ($rmmod_rc)"
fi

dmesg >"$out/dmesg.txt"
echo "tests=$tests_rc insmod=$insmod_rc rmmod=$rmmod_rc" >"$out/status.tmp"
mv "$out/status.tmp" "$out/status"
sync
say "done: $(cat "$out/status"); powering off"
