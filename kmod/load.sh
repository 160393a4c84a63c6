#!/bin/sh
# make -C kmod load | unload: the module built here into the running kernel,
# with what it needs first.  insmod does not load dependencies (on Debian's
# kernel vordr.ko needs nf_socket_ipv4 and nf_socket_ipv6); modprobe does,
# so each dependency modinfo names is modprobe'd, then vordr.ko is insmod'ed.
#
#   sh kmod/load.sh load [KO [PARAM=VALUE...]]   (default KO: kmod/vordr.ko)
#   sh kmod/load.sh unload
set -u
here=$(cd "$(dirname "$0")" && pwd)
what=${1:-load}
[ $# -gt 0 ] && shift
ko=${1:-$here/vordr.ko}
[ $# -gt 0 ] && shift
kver=$(uname -r)

vm_hint() {
	echo "  Try vordr in the test VM instead, which boots Debian's kernel with this" >&2
	echo "  module built for it: ./try in the source tree (README)." >&2
}
fail() { echo "kmod/load.sh: $*" >&2; vm_hint; exit 1; }

# Can this kernel load a module at all?  Not in a container (no
# CAP_SYS_MODULE, no /lib/modules of the running kernel) or when module
# loading was switched off (kernel.modules_disabled=1, lockdown).
can_load() {
	[ -r /proc/modules ] || fail "this kernel has no loadable modules (/proc/modules is missing)."
	if [ "$(cat /proc/sys/kernel/modules_disabled 2>/dev/null || echo 0)" = 1 ]; then
		fail "module loading is switched off on this kernel (kernel.modules_disabled = 1)."
	fi
	[ "$(id -u)" = 0 ] || fail "loading a module needs root: sudo make -C kmod $what"
	# CAP_SYS_MODULE is bit 16 of the effective set.
	capeff=$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)
	if [ -n "$capeff" ] && [ $(( 0x$capeff >> 16 & 1 )) = 0 ]; then
		fail "this process may not load modules (no CAP_SYS_MODULE: a container?)."
	fi
	[ -d "/lib/modules/$kver" ] || fail "the running kernel $kver has no /lib/modules/$kver (a container, or a kernel not installed from a package?)."
}

case $what in
load)
	can_load
	[ -f "$ko" ] || fail "$ko is not built (make -C kmod; it needs /lib/modules/$kver/build, from linux-headers-$kver)."
	built_for=$(modinfo -F vermagic "$ko" 2>/dev/null | cut -d' ' -f1)
	[ "$built_for" = "$kver" ] || fail "$ko was built for kernel ${built_for:-?}, this is $kver: make -C kmod clean all"
	if grep -q '^vordr ' /proc/modules; then
		echo "kmod/load.sh: vordr is loaded already (make -C kmod unload first)" >&2
		exit 1
	fi
	for dep in $(modinfo -F depends "$ko" | tr ',' ' '); do
		modprobe "$dep" || fail "modprobe $dep failed (vordr.ko needs it)."
		echo "kmod/load.sh: modprobe $dep"
	done
	insmod "$ko" "$@" || fail "insmod $ko failed: the kernel log says why (dmesg | tail)."
	echo "kmod/load.sh: insmod $ko $*: $(grep '^vordr ' /proc/modules | cut -d' ' -f1-3)"
	;;
unload)
	grep -q '^vordr ' /proc/modules 2>/dev/null || { echo "kmod/load.sh: vordr is not loaded"; exit 0; }
	rmmod vordr || { echo "kmod/load.sh: rmmod vordr failed (a program holding it? lsmod | grep vordr)" >&2; exit 1; }
	echo "kmod/load.sh: vordr unloaded"
	;;
*)
	echo "usage: $0 load [KO [PARAM=VALUE...]] | unload" >&2
	exit 2
	;;
esac
