# Shared helpers for test/vm/run.sh and test/vm/try.sh (sourced, not run).
#
# Layout (all under test/vm/out/, gitignored):
#   out/FLAVOR/src/{kmod,defs.x}   private copy of the module sources, built there
#   out/FLAVOR/initramfs/          initramfs staging tree
#   out/FLAVOR/initramfs.cpio.gz   the initramfs
#   out/FLAVOR/share/              9p share mounted read-write at /mnt/out in the VM
#   out/FLAVOR/console.log         serial console of the last boot

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$VM_DIR/../.." && pwd)
OUT="$VM_DIR/out"

# Modules the stock kernel needs for the 9p + overlay root, in the order
# asked for; dependencies are added (first) from `modinfo -F depends`.
ROOT_MODULES=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
              netfs fscache 9pnet 9pnet_virtio 9p overlay)

vm_log() { echo "vm${VM_FLAVOR:+[$VM_FLAVOR]}: $*" >&2; }

# Kernel log lines that fail a run.
BAD_PATTERNS=("WARNING:" "BUG:" "Oops" "Kernel panic" "general protection fault"
  "possible circular locking" "possible recursive locking" "inconsistent lock state"
  "suspicious RCU usage" "lockdep" "KASAN" "UBSAN" "rcu_sched self-detected stall"
  "rcu: INFO" "soft lockup" "hung_task" "unreferenced object" "Call Trace:")
# Benign lines that match the above (boot banners, the echoed command line).
IGNORE_PATTERNS=("Command line:" "command line:" "RCU lockdep checking is enabled.")

# klog_hits FILE: FILE's lines (numbered) that fail a run; none when clean.
klog_hits() {
  local args=() ign=() p
  for p in "${BAD_PATTERNS[@]}"; do args+=(-e "$p"); done
  for p in "${IGNORE_PATTERNS[@]}"; do ign+=(-e "$p"); done
  grep -nF "${args[@]}" "$1" 2>/dev/null | grep -vF "${ign[@]}" || true
}

# The distribution's kernel metapackages: Debian's, then Ubuntu's (virtual is
# what ./try installs there; generic is a desktop's; both name one image).
STOCK_KERNEL_PACKAGES=(linux-image-amd64 linux-image-virtual linux-image-generic)

# Stock kernel version from the first installed metapackage of those.
stock_kernel_version() {
  local pkg dep=""
  for pkg in "${STOCK_KERNEL_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || continue
    dep=$(dpkg-query -W -f='${Depends}' "$pkg") && break
  done
  [[ -n "$dep" ]] || {
    vm_log "no kernel metapackage installed (${STOCK_KERNEL_PACKAGES[*]}): ./try installs it"; return 1; }
  # e.g. "linux-image-6.1.0-56-amd64 (= 6.1.192-2)", "linux-image-6.8.0-151-generic, linux-modules-extra-..."
  dep=$(tr ',|' '\n\n' <<<"$dep" | sed -n 's/^ *linux-image-\([0-9][^ ]*\).*/\1/p' | head -n1)
  [[ -n "$dep" ]] || { vm_log "cannot parse $pkg's Depends"; return 1; }
  echo "$dep"
}

# Where the VM reads the stock kernel image from. Ubuntu's /boot/vmlinuz-*
# is readable by root only; ./try copies it (with sudo, after asking) to
# out/stock/vmlinuz-VERSION, readable by its user, and that copy is used.
stock_kernel_image() {
  local ver=$1 copy="$OUT/stock/vmlinuz-$1"
  if [[ -r /boot/vmlinuz-$ver ]]; then echo "/boot/vmlinuz-$ver"
  elif [[ -r $copy && ! $copy -ot /boot/vmlinuz-$ver ]]; then echo "$copy"
  else
    vm_log "/boot/vmlinuz-$ver is readable by root only: ./try copies it, or: sudo install -m 0644 -o $(id -un) /boot/vmlinuz-$ver $copy"
    return 1
  fi
}

# Uncompress a bzImage's payload (xz, gzip or zstd) into an ELF vmlinux if it has a PVH entry
# note (Xen ELF note 18, XEN_ELFNOTE_PHYS32_ENTRY); false if that fails.
extract_pvh_vmlinux() {
  local image=$1 elf=$2 tmp="$2.tmp"
  mkdir -p "$(dirname "$elf")"
  python3 - "$image" "$tmp" <<'PY' || { rm -f "$tmp"; return 1; }
import lzma, gzip, subprocess, sys, zlib
data = open(sys.argv[1], 'rb').read()
out = None
for magic, kind in ((b'\xfd7zXZ\x00', 'xz'), (b'\x1f\x8b\x08', 'gz')):
    i = data.find(magic)
    while i >= 0 and out is None:
        try:
            if kind == 'xz':
                out = lzma.LZMADecompressor().decompress(data[i:])
            else:
                out = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[i:])
            if out[:4] != b'\x7fELF':
                out = None
        except Exception:
            out = None
        i = data.find(magic, i + 1)
    if out is not None:
        break
# Ubuntu's kernels are zstd-compressed (CONFIG_KERNEL_ZSTD): zstd(1) stops
# with an error at the length the bzImage appends, after the whole ELF.
i = data.find(b'\x28\xb5\x2f\xfd') if out is None else -1
while i >= 0 and out is None:
    try:
        r = subprocess.run(['zstd', '-dcq'], input=data[i:], capture_output=True)
        if r.stdout[:4] == b'\x7fELF':
            out = r.stdout
    except OSError:
        break
    i = data.find(b'\x28\xb5\x2f\xfd', i + 1)
if out is None:
    sys.exit(1)
open(sys.argv[2], 'wb').write(out)
PY
  if readelf -n "$tmp" 2>/dev/null | grep -q 'Unknown note type: (0x00000012)'; then
    mv "$tmp" "$elf"
  else
    rm -f "$tmp"; return 1
  fi
}

# Sets KERNEL_IMAGE, KERNEL_VERSION, KDIR, MODULES_DIR (empty: all built in).
resolve_kernel() {
  local flavor=$1
  case "$flavor" in
    stock|systemd)
      KERNEL_VERSION=$(stock_kernel_version) || return 1
      KERNEL_IMAGE=$(stock_kernel_image "$KERNEL_VERSION") || return 1
      MODULES_DIR=/lib/modules/$KERNEL_VERSION
      KDIR=${VORDR_KDIR_stock:-$MODULES_DIR/build}
      # Booting the uncompressed ELF through its PVH entry point skips the
      # bzImage's xz decompression, which takes ~8 s under TCG.
      local elf="$OUT/stock/vmlinux-$KERNEL_VERSION"
      if [[ ${VORDR_PVH:-1} == 1 ]] && { [[ -s $elf && $elf -nt $KERNEL_IMAGE ]] || extract_pvh_vmlinux "$KERNEL_IMAGE" "$elf"; }; then
        KERNEL_IMAGE=$elf
      fi
      ;;
    debug)
      local kroot
      if [[ -n ${VORDR_DEBUG_KERNEL_DIR:-} ]]; then
        kroot=$VORDR_DEBUG_KERNEL_DIR   # a kernel-* dir made by debug-kernel.sh
      else
        kroot=$(bash "$VM_DIR/debug-kernel.sh" | tail -n1) || { vm_log "debug kernel build failed"; return 1; }
      fi
      [[ -f "$kroot/bzImage" ]] || { vm_log "debug-kernel.sh gave no bzImage ($kroot)"; return 1; }
      KERNEL_IMAGE=$kroot/bzImage
      KDIR=$kroot/linux
      KERNEL_VERSION=$(make -s -C "$KDIR" kernelrelease 2>/dev/null || echo unknown)
      MODULES_DIR=""
      ;;
    *) vm_log "unknown flavor '$flavor' (stock | debug | systemd)"; return 1 ;;
  esac
  [[ -r "$KERNEL_IMAGE" ]] || { vm_log "kernel image $KERNEL_IMAGE not readable"; return 1; }
  vm_log "kernel $KERNEL_VERSION: $KERNEL_IMAGE (KDIR=$KDIR)"
}

# Build kmod/ for the flavor's kernel in out/FLAVOR/src; sets VORDR_KO_PATH.
# VORDR_KO_<flavor> or VORDR_KO (path to a prebuilt .ko) skip the build.
build_module() {
  local flavor=$1 override_var="VORDR_KO_$1"
  local override=${!override_var:-${VORDR_KO:-}}
  if [[ -n "$override" ]]; then
    [[ -f "$override" ]] || { vm_log "module override $override does not exist"; return 1; }
    VORDR_KO_PATH=$(realpath "$override")
    vm_log "using prebuilt module $VORDR_KO_PATH (override, kmod/ not built)"
    return 0
  fi
  [[ -f "$REPO/kmod/Makefile" ]] || { vm_log "no kmod/Makefile in $REPO (set VORDR_KO=... to test another module)"; return 1; }
  local src="$OUT/$flavor/src"
  rm -rf "$src"; mkdir -p "$src"
  cp -a "$REPO/kmod" "$src/kmod"
  [[ -f "$REPO/defs.x" ]] && cp -a "$REPO/defs.x" "$src/defs.x"
  # Drop build products a developer may have left in kmod/.
  make -s -C "$src/kmod" KDIR="$KDIR" clean >/dev/null 2>&1 || true
  local log="$OUT/$flavor/kmod-build.log"
  vm_log "building module: make -C $src/kmod KDIR=$KDIR W=1"
  if ! make -C "$src/kmod" KDIR="$KDIR" W=1 >"$log" 2>&1; then
    sed "s/^/  kmod| /" "$log" >&2
    vm_log "module build FAILED"
    return 1
  fi
  # Any compiler (or modpost) warning fails the run.
  if grep -E 'warning:|WARNING:' "$log" >/dev/null; then
    grep -E -B2 -A3 'warning:|WARNING:' "$log" | sed "s/^/  kmod| /" >&2
    vm_log "module build printed warnings: treated as a failure"
    return 1
  fi
  VORDR_KO_PATH="$src/kmod/vordr.ko"
  [[ -f "$VORDR_KO_PATH" ]] || { vm_log "build succeeded but $VORDR_KO_PATH is missing"; return 1; }
  vm_log "module built: $VORDR_KO_PATH"
}

# Ordered list (dependencies first) of module files for the 9p root.
# Modules that are built in or absent are skipped.
root_module_files() {
  local ver=$1 m
  declare -A seen=()
  local -a order=()
  visit() {
    local name=${1//-/_} path deps d
    [[ -n "${seen[$name]:-}" ]] && return 0
    seen[$name]=1
    path=$(modinfo -k "$ver" -n "$name" 2>/dev/null) || return 0   # absent or built in
    [[ -f "$path" ]] || return 0                                     # "(builtin)"
    deps=$(modinfo -k "$ver" -F depends "$name" 2>/dev/null || true)
    for d in ${deps//,/ }; do visit "$d"; done
    order+=("$path")
  }
  for m in "${ROOT_MODULES[@]}"; do visit "$m"; done
  printf '%s\n' "${order[@]}"
}

# Build out/FLAVOR/initramfs.cpio.gz (busybox + /init + root modules).
build_initramfs() {
  local flavor=$1
  local dir="$OUT/$flavor/initramfs" bb=/bin/busybox
  # busybox-static installs a static /bin/busybox; the dynamic busybox package
  # would not run inside the initramfs.
  [[ -x $bb ]] && ! ldd "$bb" >/dev/null 2>&1 || { vm_log "need a static /bin/busybox (apt-get install busybox-static)"; return 1; }
  rm -rf "$dir"; mkdir -p "$dir"/{bin,dev,proc,sys,lower,rw,newroot,modules}
  cp "$bb" "$dir/bin/busybox"
  ln -s busybox "$dir/bin/sh"
  cp "$VM_DIR/init" "$dir/init"; chmod 755 "$dir/init"
  : >"$dir/modules/order"
  if [[ -n "$MODULES_DIR" ]]; then
    local f i=0 base
    while IFS= read -r f; do
      [[ -n "$f" ]] || continue
      base=$(printf '%02d-%s' "$i" "$(basename "$f")"); i=$((i + 1))
      case "$f" in
        *.ko.xz)  xz -dc "$f" >"$dir/modules/${base%.xz}";   base=${base%.xz} ;;
        *.ko.zst) zstd -qdc "$f" >"$dir/modules/${base%.zst}"; base=${base%.zst} ;;
        *.ko.gz)  gzip -dc "$f" >"$dir/modules/${base%.gz}"; base=${base%.gz} ;;
        *)        cp "$f" "$dir/modules/$base" ;;
      esac
      echo "$base" >>"$dir/modules/order"
    done < <(root_module_files "$KERNEL_VERSION")
    vm_log "initramfs modules: $(sed 's/^[0-9]*-//; s/\.ko$//' "$dir/modules/order" | tr '\n' ' ')"
  fi
  (cd "$dir" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) \
    | gzip -1 >"$OUT/$flavor/initramfs.cpio.gz"
  INITRAMFS="$OUT/$flavor/initramfs.cpio.gz"
}

# Fresh out share with the parameters for the guest. Extra KEY=VALUE args are added.
prepare_share() {
  local flavor=$1; shift
  SHARE="$OUT/$flavor/share"
  rm -rf "$SHARE"; mkdir -p "$SHARE"
  cp "$VORDR_KO_PATH" "$SHARE/"
  {
    printf 'VORDR_REPO=%q\n' "$REPO"
    printf 'VORDR_FLAVOR=%q\n' "$flavor"
    # The guest loads the copy in the share: the original may sit where the
    # VM does not see the host's files (e.g. under /tmp).
    printf 'VORDR_KO=%q\n' "/mnt/out/$(basename "$VORDR_KO_PATH")"
    printf 'VORDR_MODULE=%q\n' "$(modinfo -F name "$VORDR_KO_PATH" 2>/dev/null || basename "$VORDR_KO_PATH" .ko)"
    printf 'VORDR_TESTS=%q\n' "${VORDR_TESTS:-}"
    # Knobs of single test files (fuzz.test.mjs: VORDR_FUZZ_UNPRIV, ...).
    local v; for v in ${!VORDR_FUZZ_@}; do printf 'export %s=%q\n' "$v" "${!v}"; done
    local kv; for kv in "$@"; do printf '%s=%q\n' "${kv%%=*}" "${kv#*=}"; done
  } >"$SHARE/vordr.env"
  printf '%s' "$REPO" >"$SHARE/repo"
}

# QEMU command line (without the serial option) in array QEMU_CMD.
qemu_cmd() {
  local flavor=$1 append
  append="console=ttyS0,115200 panic=-1 oops=panic softlockup_panic=1 hung_task_panic=1 8250.nr_uarts=1 rdinit=/init"
  if [[ $flavor == debug ]]; then
    # TCG plus KASAN is slow: give the watchdogs some slack so that only real
    # lockups fire (soft lockup after 2*watchdog_thresh seconds).
    append+=" watchdog_thresh=30 kasan.fault=report"
    # ACPI is there to enumerate the CPUs; its AML interpreter is too slow
    # under KASAN + TCG to route PCI interrupts (_PRT loop timeouts, 60 s).
    append+=" acpi=noirq"
  fi
  [[ $flavor == try ]] && append+=" quiet"
  # systemd flavor (test/vm/systemd.sh): /init hands over to systemd, which
  # boots the test target (test/vm/systemd/units/vordr-test.target) instead of the
  # host's default one.
  [[ $flavor == systemd ]] && append+=" systemd.unit=vordr-test.target systemd.log_color=0"
  append+=" ${VORDR_APPEND:-}"
  QEMU_CMD=(qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m "${VORDR_VM_MEM:-2048}"
    -nodefaults -no-user-config -display none -no-reboot -nic none
    -kernel "$KERNEL_IMAGE" -initrd "$INITRAMFS" -append "$append"
    -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
    -virtfs "local,path=$SHARE,mount_tag=vordrout,security_model=none,multidevs=remap")
}
