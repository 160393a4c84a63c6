#!/usr/bin/env bash
# Try vordr by hand in a VM (./try sets up, then runs this; npm run try):
# boots Debian's stock kernel in QEMU (TCG, no network) with the host's / as
# a read-only 9p root (writes go to a tmpfs overlay and vanish), loads the
# freshly built vordr.ko and opens tmux on this terminal: the console (vordr)
# above, a root shell below with `vordr` and `demo` on PATH. Exiting the
# shell powers the VM off. VORDR_TRY_TMUX=0: the console alone, then a shell.
#
# Keys: Ctrl-A X quits QEMU at any time, Ctrl-A C toggles the QEMU monitor.
# Environment: VORDR_KO=path.ko (prebuilt module instead of building kmod/),
# VORDR_APPEND (extra kernel command line), VORDR_VM_MEM (MiB, 2048).
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VM_FLAVOR=try

resolve_kernel stock
# Build in out/try so a concurrent run.sh stock is not disturbed.
build_module try
build_initramfs try

rows=24 cols=80
if [[ -t 0 ]] && size=$(stty size 2>/dev/null) && [[ $size =~ ^([0-9]+)\ ([0-9]+)$ ]]; then
  rows=${BASH_REMATCH[1]} cols=${BASH_REMATCH[2]}
  ((rows > 0 && cols > 0)) || { rows=24 cols=80; }
fi
term=${TERM:-xterm-256color}
[[ $term == dumb || $term == unknown ]] && term=xterm-256color

prepare_share try VORDR_MODE=try VORDR_ROWS="$rows" VORDR_COLS="$cols" VORDR_TERM="$term"
qemu_cmd try

saved_tty=""
[[ -t 0 ]] && saved_tty=$(stty -g 2>/dev/null || true)
restore_tty() {
  if [[ -n "$saved_tty" ]]; then stty "$saved_tty" 2>/dev/null || stty sane 2>/dev/null || true; fi
  # Leave the screen usable even if the guest left it in an odd mode.
  [[ -t 1 ]] && printf '\e[?1049l\e[?25h\e[0m' || true
}
trap restore_tty EXIT

vm_log "booting the stock kernel (${rows}x${cols}, TERM=$term); Ctrl-A X quits QEMU"
"${QEMU_CMD[@]}" -serial mon:stdio
vm_log "VM exited"
