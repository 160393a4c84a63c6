#!/usr/bin/env bash
# Kernel tests of vordr in QEMU (software emulation, no network).
#
#   bash test/vm/run.sh stock debug      # what `npm run test:vm` runs
#
# For each flavor: get the kernel (stock = the distribution's: Debian's
# linux-image-amd64 or Ubuntu's linux-image-virtual/-generic, debug =
# test/vm/debug-kernel.sh, cached), build kmod/ against it in
# test/vm/out/FLAVOR/src (any compiler warning fails), boot it with a busybox
# initramfs that mounts the host's / over 9p (read-only, tmpfs overlay), and
# run test/vm/guest.sh there: insmod vordr.ko, node --test test/vm/*.test.mjs,
# rmmod, kmemleak (debug), dmesg. The host then judges the results and the
# kernel log. Last line: "N passed, M failed"; exit status non-zero on any
# failure. Harness-level failures of a flavor (cannot run, timeout, no status,
# insmod/rmmod failure) count as one failed test, a dirty kernel log as another.
#
# Environment:
#   VORDR_KO=path.ko, VORDR_KO_stock=..., VORDR_KO_debug=...
#       test this prebuilt module instead of building kmod/
#   VORDR_TIMEOUT_stock (3900), VORDR_TIMEOUT_debug (4500), VORDR_TIMEOUT (others: 1800)
#       seconds before the VM is killed
#   VORDR_DEBUG_KERNEL_DIR   use this kernel-* dir instead of debug-kernel.sh's
#   VORDR_APPEND   extra kernel command line
#   VORDR_TESTS="test/vm/a.test.mjs ..."   run only these test files, on every
#       flavor named; without it a flavor runs the files whose "// vm-flavors:"
#       line names it (a file without one runs on every flavor)
#   VORDR_JOBS     flavors run at once (default 2: the debug flavor builds
#       or waits for its kernel while stock runs)
#   VORDR_QUIET=1  do not stream the console (it is still in out/FLAVOR/console.log)
#
# Flavor systemd (what test/vm/systemd.sh runs): the stock kernel, but /init
# stages vordr's install into the overlay root (test/vm/systemd/stage.sh) and
# hands over to the host's systemd as PID 1, which runs
# test/vm/systemd/*.test.mjs from a unit and powers off. VORDR_SYSD_RULES
# (default 6): how many rules the saved policy has at that boot.
set -uo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# > 0)) || { echo "usage: $0 stock|debug..." >&2; exit 2; }

total_pass=0
total_fail=0

# flavor_result FLAVOR PASSED FAILED MESSAGE: printed, and kept in
# out/FLAVOR/result for the summary (a flavor runs in a subshell of its own).
flavor_result() {
  mkdir -p "$OUT/$1"
  printf '%s %s %s\n' "$2" "$3" "$4" >"$OUT/$1/result"
  echo "vm[$1]: $2 passed, $3 failed, $4"
}

# The test files FLAVOR runs (paths relative to the repo, space-separated):
# VORDR_TESTS when set, else each test/vm/*.test.mjs whose "// vm-flavors:"
# line names FLAVOR, or that has no such line.
flavor_tests() {
  local flavor=$1 f tags files=()
  if [[ -n ${VORDR_TESTS:-} ]]; then echo "$VORDR_TESTS"; return; fi
  for f in "$VM_DIR"/*.test.mjs; do
    # The words before a "(" that gives the reason.
    tags=$(sed -n 's|^// vm-flavors:\([^(]*\).*|\1|p' "$f" | head -n1)
    if [[ -z $tags ]] || grep -qw -- "$flavor" <<<"$tags"; then
      files+=("test/vm/$(basename "$f")")
    fi
  done
  echo "${files[*]}"
}

# Prefix each console line with the flavor and the seconds since QEMU started.
stamp_lines() {
  local start=${EPOCHREALTIME/./} line ds
  while IFS= read -r line; do
    ds=$(( (${EPOCHREALTIME/./} - start) / 100000 ))   # tenths of a second
    printf '[%s %4d.%ds] %s\n' "$1" $((ds / 10)) $((ds % 10)) "$line"
  done
}

run_flavor() {
  local flavor=$1
  VM_FLAVOR=$flavor
  local dir="$OUT/$flavor"
  mkdir -p "$dir"
  rm -f "$dir/console.log"

  command -v qemu-system-x86_64 >/dev/null || { vm_log "qemu-system-x86_64 missing"; flavor_result "$flavor" 0 1 "CANNOT RUN (no qemu-system-x86_64)"; return; }
  resolve_kernel "$flavor" || { flavor_result "$flavor" 0 1 "CANNOT RUN (no kernel)"; return; }
  build_module "$flavor" || { flavor_result "$flavor" 0 1 "CANNOT RUN (module build failed)"; return; }
  build_initramfs "$flavor" || { flavor_result "$flavor" 0 1 "CANNOT RUN (initramfs)"; return; }
  # systemd (test/vm/systemd.sh): /init stages the install into the root and
  # starts systemd, whose test unit runs test/vm/systemd/runner.sh.
  local mode=test extra=()
  if [[ $flavor == systemd ]]; then
    mode=systemd
    extra+=(VORDR_SYSD_RULES="${VORDR_SYSD_RULES:-6}")
    source "$VM_DIR/systemd/host.sh"
    systemd_host_prepare "$dir" || { flavor_result "$flavor" 0 1 "CANNOT RUN (host side of the systemd flavor)"; return; }
  fi
  [[ $flavor == systemd ]] || VORDR_TESTS=$(flavor_tests "$flavor")
  vm_log "test files: ${VORDR_TESTS:-those of the flavor}"
  prepare_share "$flavor" VORDR_MODE=$mode ${extra[@]+"${extra[@]}"}
  [[ $flavor == systemd ]] && cp -r "$dir/daemon.tar" "$dir/modules" "$SHARE/"
  # The tests' C helpers (test/vm/*.c, e.g. nlfuzz.c), built here into the
  # share (/mnt/out/NAME in the VM): a compiler under emulation takes minutes.
  local helper
  for helper in "$(dirname "${BASH_SOURCE[0]}")"/*.c; do
    [[ -e $helper ]] || continue
    gcc -O2 -Wall -Wextra -Werror -o "$SHARE/$(basename "$helper" .c)" "$helper" \
      || { flavor_result "$flavor" 0 1 "CANNOT RUN (build of $helper failed)"; return; }
  done
  qemu_cmd "$flavor"

  local tvar="VORDR_TIMEOUT_$flavor" tmo
  tmo=${!tvar:-${VORDR_TIMEOUT:-}}
  # stock and debug: their suites beside the other lane took 1,723 s and about
  # 2,400 s inside the VM (2b97b55); the limit is a safety net, not a budget.
  [[ -n "$tmo" ]] || case $flavor in stock) tmo=3900 ;; debug) tmo=4500 ;; systemd) tmo=2400 ;; *) tmo=1800 ;; esac

  vm_log "booting (timeout ${tmo}s): ${QEMU_CMD[*]} -serial stdio"
  echo "===== vm[$flavor] console begin ====="
  local t0 t1 qrc
  t0=$(date +%s)
  if [[ ${VORDR_QUIET:-0} == 1 ]]; then
    timeout -k 10 "$tmo" "${QEMU_CMD[@]}" -serial stdio </dev/null 2>&1 \
      | sed -u 's/\r$//' >"$dir/console.log"
    qrc=${PIPESTATUS[0]}
  else
    timeout -k 10 "$tmo" "${QEMU_CMD[@]}" -serial stdio </dev/null 2>&1 \
      | sed -u 's/\r$//' | tee "$dir/console.log" | stamp_lines "$flavor"
    qrc=${PIPESTATUS[0]}
  fi
  t1=$(date +%s)
  echo "===== vm[$flavor] console end (qemu exit $qrc, ${t1}-${t0} = $((t1 - t0))s) ====="

  # Harness problems (timeout, missing results, insmod/rmmod failure) count as
  # one failed test together, a dirty kernel log as another.
  local problems=() notes=() extra_fail=0
  [[ -f "$SHARE/boot-seconds" ]] && vm_log "userspace reached $(cat "$SHARE/boot-seconds")s after kernel start; VM ran $((t1 - t0))s in all"

  if [[ $qrc == 124 || $qrc == 137 ]]; then
    problems+=("VM TIMED OUT after ${tmo}s")
  elif [[ $qrc != 0 ]]; then
    problems+=("qemu exited with $qrc")
  fi

  local status="" tests_rc="" insmod_rc="" rmmod_rc=""
  if [[ -f "$SHARE/status" ]]; then
    status=$(cat "$SHARE/status")
    tests_rc=$(sed -n 's/.*tests=\([0-9]*\).*/\1/p' <<<"$status")
    insmod_rc=$(sed -n 's/.*insmod=\([0-9]*\).*/\1/p' <<<"$status")
    rmmod_rc=$(sed -n 's/.*rmmod=\([0-9]*\).*/\1/p' <<<"$status")
  else
    problems+=("no status file came back from the VM")
  fi

  local pass=0 fail=0
  if [[ -f "$SHARE/tap.txt" ]]; then
    pass=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$SHARE/tap.txt" | tail -n1)
    fail=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$SHARE/tap.txt" | tail -n1)
    pass=${pass:-0}; fail=${fail:-0}
    if [[ -z $(sed -n '/^# pass /p' "$SHARE/tap.txt") ]]; then
      problems+=("test output has no '# pass' summary (node crashed?)")
    fi
  elif [[ -n "$status" ]]; then
    problems+=("no test output (tap.txt)")
  fi
  if [[ -n "$insmod_rc" && "$insmod_rc" != 0 ]]; then
    problems+=("insmod of $VORDR_KO_PATH failed ($insmod_rc)")
  fi
  if [[ -n "$tests_rc" && "$tests_rc" != 0 && "$insmod_rc" == 0 ]]; then
    # already counted when TAP reports failures
    ((fail == 0)) && problems+=("node --test exited $tests_rc") || notes+=("node --test exited $tests_rc")
  fi
  if [[ -n "$rmmod_rc" && "$rmmod_rc" != 0 ]]; then
    problems+=("rmmod failed ($rmmod_rc)")
  fi
  if ((pass + fail == 0)) && [[ "$insmod_rc" == 0 ]]; then
    problems+=("no VM test ran")
  fi

  # Kernel log: dmesg from the guest; the console log when the VM died first.
  local klog="$SHARE/dmesg.txt" kname="dmesg"
  if [[ ! -f "$klog" ]]; then klog="$dir/console.log"; kname="console log (no dmesg came back)"; fi
  local hits
  hits=$(klog_hits "$klog")
  if [[ -f "$SHARE/kmemleak.txt" ]] && grep -q 'unreferenced object' "$SHARE/kmemleak.txt"; then
    hits+=$'\n'"$(sed 's/^/kmemleak: /' "$SHARE/kmemleak.txt" | head -n 80)"
  fi
  hits=$(sed '/^$/d' <<<"$hits")
  local klog_msg="kernel log clean"
  if [[ -n "$hits" ]]; then
    echo "vm[$flavor]: kernel log ($kname) has problems:"
    head -n 120 <<<"$hits" | sed 's/^/    /'
    klog_msg="KERNEL LOG NOT CLEAN ($(wc -l <<<"$hits") line(s), see $klog)"
    extra_fail=$((extra_fail + 1))
  fi

  ((${#problems[@]})) && extra_fail=$((extra_fail + 1))
  local msg=$klog_msg
  problems+=(${notes[@]+"${notes[@]}"})
  ((${#problems[@]})) && msg+="; $(IFS=';'; echo "${problems[*]}" | sed 's/;/; /g')"
  flavor_result "$flavor" "$pass" "$((fail + extra_fail))" "$msg"
}

jobs=${VORDR_JOBS:-2}
running=0
for f in "$@"; do
  rm -f "$OUT/$f/result"
  if ((running >= jobs)); then wait -n; running=$((running - 1)); fi
  ( run_flavor "$f" ) &
  running=$((running + 1))
done
wait

echo "===== vm summary ====="
for f in "$@"; do
  if read -r p n msg <"$OUT/$f/result" 2>/dev/null; then
    total_pass=$((total_pass + p)); total_fail=$((total_fail + n))
    echo "vm[$f]: $p passed, $n failed, $msg"
  else
    total_fail=$((total_fail + 1))
    echo "vm[$f]: no result (the harness died)"
  fi
done
echo "$total_pass passed, $total_fail failed"
((total_fail == 0))
