#!/usr/bin/env bash
# The guided tour of README, run without a person (./try --tour):
# test/vm/try.sh in a tmux session of the host (100x32), driven with
# send-keys and read with capture-pane. In the VM's shell pane: demo curl
# (passes), a block rule for curl, demo curl (blocked), query (the rule
# listed), the console's event, clear, demo curl (passes again); in the
# console pane set unkrule pending; demo unknown, the console's prompt,
# allowed always (a, w, Enter), then the prompt for the demo's server
# (python3, inbound), allowed; demo unknown (passes); exit (the VM powers
# off). The screens go to test/vm/out/tour/NN-name.txt; README's tour
# shows them.
#
#   bash test/vm/tour.sh
#
# Last line "N passed, M failed"; exit status non-zero on any failure.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VM_FLAVOR=tour
dir=$OUT/tour
rm -rf "$dir"; mkdir -p "$dir"
sock=vordr-tour-$$
T=(tmux -L "$sock" -f /dev/null)
pass=0 fail=0 n=0
ok() { n=$((n + 1)); pass=$((pass + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n - $*"; }
finish() {
  "${T[@]}" kill-server 2>/dev/null
  echo "1..$n"; echo "$pass passed, $fail failed"; ((fail == 0)); exit
}
trap finish INT TERM

screen() { "${T[@]}" capture-pane -p -t tour 2>/dev/null; }
# wait_for REGEX SECONDS: the host's pane (the VM's whole screen) shows it.
wait_for() {
  local end=$((SECONDS + $2))
  while ((SECONDS < end)); do
    screen | grep -qE -- "$1" && return 0
    sleep 1
  done
  return 1
}
shot() { screen >"$dir/$1.txt"; }
type_line() { "${T[@]}" send-keys -t tour -l -- "$1"; "${T[@]}" send-keys -t tour Enter; }
# expect NAME REGEX SECONDS: one check, the screen shown when it fails.
expect() {
  if wait_for "$2" "$3"; then ok "$1"; else not_ok "$1 (no /$2/ in $3 s)"; screen | sed 's/^/    # /'; fi
}
# step NAME COMMAND REGEX SECONDS SHOT: clear the VM's shell pane, type
# COMMAND there, expect REGEX, keep the screen as SHOT.
step() {
  type_line clear; sleep 2
  type_line "$2"
  expect "$1" "$3" "$4"
  shot "$(printf '%02d' "$n")-$5"
}

"${T[@]}" new-session -d -s tour -x 100 -y 32 "cd $(printf %q "$REPO") && TERM=xterm-256color bash test/vm/try.sh 2>&1 | tee $(printf %q "$dir/try.log"); sleep 2"
t0=$SECONDS
if wait_for '\[vordr try\]' 600 && wait_for 'vordr-vm:' 120; then
  ok "the VM boots to the console and a shell side by side ($((SECONDS - t0)) s)"
else
  not_ok "the VM's console and shell (tmux) in 720 s"; screen | sed 's/^/    # /'; tail -n 30 "$dir/try.log" | sed 's/^/    # /'; finish
fi
wait_for 'mode enabled +unkrule' 120 || true
shot 01-boot
step "demo curl passes with no rule" "demo curl" 'curl http://127\.0\.0\.1:8080/ \(/usr/bin/curl\): passed' 60 curl-passes
step "a block rule from the shell's vordr" "echo 'block tcp /usr/bin/curl' | vordr && echo rule-added" '^rule-added' 60 block
step "demo curl is refused" "demo curl" 'curl http://127\.0\.0\.1:8080/ \(/usr/bin/curl\): blocked' 60 curl-refused
step "query lists the rule" "echo query | vordr" '^block tcp /usr/bin/curl' 60 query
step "the console above shows the blocked connection" "true" 'curl .* out +tcp .* block +rule tcp /usr/bin/c' 30 console-event
step "clear, and curl passes again" "echo 'clear /usr/bin/curl' | vordr; demo curl" '\(/usr/bin/curl\): passed' 60 cleared
# A prompt: in the console (Ctrl-B Up), set unkrule pending; in the shell
# (Ctrl-B Down), an unknown program; the console asks about it; allow it
# always (a, w, Enter: the prompt takes keys after 1 s on screen).
key() { "${T[@]}" send-keys -t tour "$@"; }
key C-b Up; sleep 1
type_line "set unkrule pending"
expect "set unkrule pending in the console" 'unkrule: pending' 30
shot "$(printf '%02d' "$n")-unkrule-pending"
key C-b Down; sleep 1
type_line clear; sleep 1
type_line "demo unknown"
expect "the console asks about the unknown program" '/opt/demo/unknown-app wants to connect' 60
shot "$(printf '%02d' "$n")-prompt"
key C-b Up; sleep 2
key a; sleep 0.5; key w; sleep 0.5; key Enter
expect "answered: allow tcp /opt/demo/unknown-app, always" 'added: allow tcp /opt/demo/unknown-app' 30
# Its connection reaches the demo's HTTP server, python3, which no rule
# names either: the console asks about that inbound connection too.
expect "the console asks about the server (inbound)" '/usr/bin/python3[.0-9]* wants to accept a connection' 60
shot "$(printf '%02d' "$n")-prompt-server"
sleep 2
key a; sleep 0.5; key w; sleep 0.5; key Enter
expect "answered: allow tcp python3, always" 'added: allow tcp /usr/bin/python3' 30
# Its retry (curl waits 25 s) usually passes now; whether it does depends
# on SYN retransmission times against the two answers, so this screen is
# kept but not judged; the next demo unknown must pass.
wait_for 'unknown-app\): passed' 40 || true
shot "$(printf '%02d' "$n")-answered"
key C-b Down; sleep 1
step "the unknown program passes now" "demo unknown" 'unknown-app\): passed' 60 unknown-allowed
# The kernel's own word on all of it, judged as every VM run's is (lib.sh's
# klog_hits): the VM writes its dmesg to the try share, /mnt/out.
type_line clear; sleep 2
type_line "dmesg >/mnt/out/dmesg.txt && echo kernel-log-saved"
klog=$OUT/try/share/dmesg.txt
if wait_for '^kernel-log-saved' 30 && [[ -s $klog ]]; then
  hits=$(klog_hits "$klog")
  if [[ -z $hits ]]; then ok "the kernel log has no warning, oops or sanitizer report"
  else not_ok "the kernel log"; sed 's/^/    # /' <<<"$hits"; fi
else
  not_ok "the kernel log (no dmesg in $klog)"; screen | sed 's/^/    # /'
fi
type_line "exit"
expect "exit in the shell powers the VM off" 'vm\[try\]: VM exited' 120
finish
