#!/bin/bash
# Runs as root inside the vordr test VM (started by test/vm/init, whose PID 1
# reboots the VM when this script returns). The host's / is the (overlaid,
# read-only below) root, so the repo is at the same absolute path as on the
# host. Results go to the read-write share /mnt/out, which the host reads.
#
# Mode "test" (test/vm/run.sh): insmod, node --test test/vm/*.test.mjs, rmmod,
#   kmemleak scan (debug kernel), dmesg, status file.
# Mode "deb" (test/vm/deb.sh): test/vm/deb-guest.sh, the Debian packages.
# Mode "try" (test/vm/try.sh): insmod, then the console (node daemon/dist/cli.js)
#   or a shell on the serial terminal.
set -u
out=/mnt/out
# shellcheck disable=SC1091
source "$out/vordr.env"
export VORDR_REPO VORDR_FLAVOR VORDR_KO VORDR_MODULE VORDR_LOAD
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 LC_ALL=C.UTF-8
mode=${VORDR_MODE:-test}

say() { echo "vordr-guest: $*"; }
say "userspace up at $(cut -d' ' -f1 /proc/uptime)s (kernel $(uname -r), flavor $VORDR_FLAVOR, mode $mode)"
echo "$(cut -d' ' -f1 /proc/uptime)" >"$out/boot-seconds"

hostname "vordr-$VORDR_FLAVOR"
ip link set lo up

# Mode "deb" (test/vm/deb.sh): the package test, which installs, loads and
# removes the module itself.
if [[ $mode == deb ]]; then
  bash "$VORDR_REPO/test/vm/deb-guest.sh" </dev/null 2>&1 | tee "$out/tap.txt"
  rc=${PIPESTATUS[0]}
  dmesg >"$out/dmesg.txt"
  echo "tests=$rc" >"$out/status"
  sync
  exit 0
fi

# kmemleak (debug kernel): forget what boot allocated, so that a report at the
# end is about what happened during the tests.
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
kmemleak=/sys/kernel/debug/kmemleak
have_kmemleak=0
if [[ -w $kmemleak ]]; then
  echo clear >"$kmemleak" && have_kmemleak=1
fi

# insmod does not load what the module needs (nf_socket_ipv4/6 on Debian's
# kernel, built in on the debug one); modprobe does, from /lib/modules.
for dep in $(modinfo -F depends "$VORDR_KO" 2>/dev/null | tr ',' ' '); do
  modprobe "$dep" || say "modprobe $dep FAILED"
done
insmod_rc=0
if [[ ${VORDR_LOAD:-insmod} == modprobe ]]; then
  # VORDR_LOAD=modprobe: modprobe from /lib/modules/$(uname -r) (the host's, over 9p);
  # -v prints the insmod it ran, which must be of $VORDR_KO.
  modprobe -v "$VORDR_MODULE" >"$out/modprobe.txt" 2>&1 || insmod_rc=$?
  cat "$out/modprobe.txt"
  if [[ $insmod_rc == 0 ]] && ! grep -q "^insmod $VORDR_KO\( \|$\)" "$out/modprobe.txt"; then
    say "modprobe $VORDR_MODULE did not load $VORDR_KO"
    insmod_rc=96
  fi
else
  insmod "$VORDR_KO" || insmod_rc=$?
fi
if [[ $insmod_rc == 0 ]] && ! grep -q "^$VORDR_MODULE " /proc/modules; then
  say "insmod $VORDR_KO returned 0 but $VORDR_MODULE is not in /proc/modules"
  insmod_rc=99
fi
if [[ $insmod_rc == 0 ]]; then
  say "module loaded: $(grep "^$VORDR_MODULE " /proc/modules)"
else
  say "insmod $VORDR_KO FAILED ($insmod_rc)"
fi

if [[ $mode == try ]]; then
  cd "$VORDR_REPO" || cd /
  dmesg -n 1   # keep kernel chatter off the interactive console
  tty=/dev/ttyS0
  export TERM=${VORDR_TERM:-xterm-256color}
  if [[ -n ${VORDR_ROWS:-} && -n ${VORDR_COLS:-} ]]; then
    stty -F "$tty" rows "$VORDR_ROWS" cols "$VORDR_COLS"
  fi
  stty -F "$tty" sane
  # `vordr` and `demo` on PATH (the root's overlay is writable; it vanishes).
  printf '#!/bin/sh\nexec node %q "$@"\n' "$VORDR_REPO/daemon/dist/cli.js" >/usr/local/bin/vordr
  chmod 0755 /usr/local/bin/vordr
  ln -sf "$VORDR_REPO/test/vm/demo.sh" /usr/local/bin/demo
  # The console and a shell side by side (tmux): the console above, a shell
  # below to make traffic in (`demo`). Leaving the shell (or Ctrl-B D)
  # powers the VM off. VORDR_TRY_TMUX=0: the console, then a shell, alone.
  if [[ ${VORDR_TRY_TMUX:-1} != 0 ]] && command -v tmux >/dev/null && [[ -f daemon/dist/cli.js ]]; then
    rows=${VORDR_ROWS:-24}
    shell_rows=$((rows / 3 > 8 ? rows / 3 : 8))
    banner="echo; echo 'vordr try VM. Above: the console (help, block, allow, query). Here: a root shell.'; echo 'demo: labelled traffic from curl, python3, ping, socat and an unknown program.'; echo 'vordr: the command line (echo query | vordr). Ctrl-B, then an arrow: the other pane.'; echo 'exit (here): powers the VM off.'; echo"
    tmux -f /dev/null new-session -d -s try -x "${VORDR_COLS:-80}" -y "$rows" \
      "vordr; echo 'the console exited; this pane closes in 3 s'; sleep 3"
    tmux set-option -g status-left-length 20 \; set-option -g status-right-length 60 \; \
      set-option -g status-left '[vordr try] ' \; \
      set-option -g status-right 'demo | Ctrl-B arrow: pane | exit: power off'
    tmux split-window -t try -v -l "$shell_rows" \
      "cd $(printf %q "$VORDR_REPO"); $banner; PS1='vordr-vm:\\w# ' bash --norc -i; tmux kill-server"
    tmux select-pane -t try:0.1
    say "tmux: the console above, a shell below (type demo there)"
    # tmux's server draws on the client's standard input (its fd passed
    # over the socket), so that must be open for writing too: <>, not <.
    setsid -c -w tmux attach -t try <>"$tty" >&0 2>&1
    say "tmux session ended"
    exit 0
  fi
  if [[ -f daemon/dist/cli.js ]]; then
    say "starting the console: node daemon/dist/cli.js (exit it to get a shell)"
    setsid -c -w node daemon/dist/cli.js <"$tty" >"$tty" 2>&1
    say "console exited ($?)"
  else
    say "daemon/dist/cli.js does not exist (run npm run build?): starting a shell"
  fi
  say "shell in $PWD; module: $VORDR_MODULE ($VORDR_KO). Exit the shell to power off."
  # --norc: the host's ~/.bashrc may be slow (pyenv, ...) under emulation.
  PS1='vordr-vm:\w# ' setsid -c -w bash --norc -i <"$tty" >"$tty" 2>&1
  exit 0
fi

tests_rc=0
if [[ $insmod_rc == 0 ]]; then
  cd "$VORDR_REPO" || exit 1
  shopt -s nullglob
  if [[ -n ${VORDR_TESTS:-} ]]; then
    read -r -a files <<<"$VORDR_TESTS"
  else
    files=(test/vm/*.test.mjs)
  fi
  say "running ${#files[@]} test file(s): ${files[*]}"
  say "----- node --test begin -----"
  node --test --test-reporter=tap --test-concurrency=1 "${files[@]}" </dev/null 2>&1 | tee "$out/tap.txt"
  tests_rc=${PIPESTATUS[0]}
  say "----- node --test end (exit $tests_rc) -----"
else
  tests_rc=98
fi

rmmod_rc=0
if [[ $insmod_rc == 0 ]]; then
  rmmod "$VORDR_MODULE" || rmmod_rc=$?
  if [[ $rmmod_rc == 0 ]] && grep -q "^$VORDR_MODULE " /proc/modules; then rmmod_rc=97; fi
  [[ $rmmod_rc == 0 ]] && say "module unloaded" || say "rmmod $VORDR_MODULE FAILED ($rmmod_rc)"
fi

if [[ $have_kmemleak == 1 ]]; then
  # Objects younger than ~5 s are not reported; scan twice with a pause.
  say "kmemleak scan..."
  echo scan >"$kmemleak"; sleep 6; echo scan >"$kmemleak"
  cat "$kmemleak" >"$out/kmemleak.txt"
  say "kmemleak: $(grep -c 'unreferenced object' "$out/kmemleak.txt") unreferenced object(s)"
fi

dmesg >"$out/dmesg.txt"
echo "tests=$tests_rc insmod=$insmod_rc rmmod=$rmmod_rc" >"$out/status.tmp"
mv "$out/status.tmp" "$out/status"
sync
say "done: $(cat "$out/status")"
