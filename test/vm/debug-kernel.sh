#!/usr/bin/env bash
# Build (or reuse) the vordr debug kernel: Debian's linux-source-6.1 tarball,
# allnoconfig + test/vm/debug.config (KASAN, UBSAN, lockdep, kmemleak, ...),
# with virtio/9p/overlay built in so the VM needs no modules to boot.
#
# The build lives outside the checkout, in
#   ${XDG_CACHE_HOME:-$HOME/.cache}/vordr/kernel-<hash>/
# where <hash> covers the fragment, this script and the source tarball, and is
# reused as long as its "stamp" file exists (written only after a full build).
# On success the last line printed on stdout is the kernel directory; it
# contains bzImage and linux/ (the tree, usable as KDIR for out-of-tree
# modules: `make modules_prepare` has been run in it).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fragment="$here/debug.config"
tarball=${VORDR_KERNEL_TARBALL:-$(ls -1 /usr/src/linux-source-*.tar.xz 2>/dev/null | sort -V | tail -n1)}
jobs=${VORDR_JOBS:-$(nproc)}

log() { echo "debug-kernel: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ -n "$tarball" && -f "$tarball" ]] || die "no /usr/src/linux-source-*.tar.xz (apt-get install linux-source-6.1)"
[[ -f "$fragment" ]] || die "missing $fragment"

# Identify the source: package version if dpkg knows the tarball, plus a
# cheap fingerprint (size + sha256 of the first/last MiB would be fragile;
# the full sha256 takes about a second, so use it).
src_pkg=$(dpkg -S "$tarball" 2>/dev/null | cut -d: -f1 || true)
src_ver=""
[[ -n "$src_pkg" ]] && src_ver=$(dpkg-query -W -f='${Version}' "$src_pkg" 2>/dev/null || true)
tar_sum=$(sha256sum "$tarball" | cut -d' ' -f1)
hash=$( { echo "tarball $(basename "$tarball") $src_ver $tar_sum"; cat "$fragment";
          sed -n '/^# --- build recipe ---/,$p' "${BASH_SOURCE[0]}"; } | sha256sum | cut -c1-16)

cache=${XDG_CACHE_HOME:-$HOME/.cache}/vordr
kdir_root="$cache/kernel-$hash"
if [[ -f "$kdir_root/stamp" && -f "$kdir_root/bzImage" ]]; then
  log "cached: $kdir_root ($(cat "$kdir_root/stamp"))"
  echo "$kdir_root"
  exit 0
fi

# --- build recipe ---
mkdir -p "$cache"
exec 9>"$cache/kernel-$hash.lock"
flock 9
# Re-check after taking the lock: a concurrent run may have finished it.
if [[ -f "$kdir_root/stamp" && -f "$kdir_root/bzImage" ]]; then
  echo "$kdir_root"; exit 0
fi

start=$(date +%s)
log "building in $kdir_root from $tarball ${src_ver:+(version $src_ver)} with -j$jobs"
rm -rf "$kdir_root"
mkdir -p "$kdir_root"
tmp="$kdir_root/extract.tmp"
mkdir -p "$tmp"
log "extracting source..."
tar -C "$tmp" -xf "$tarball"
srcdir=$(find "$tmp" -mindepth 1 -maxdepth 1 -type d | head -n1)
[[ -d "$srcdir" ]] || die "tarball has no top directory"
mv "$srcdir" "$kdir_root/linux"
rmdir "$tmp"
tree="$kdir_root/linux"
cd "$tree"

export ARCH=x86_64
make -s allnoconfig
scripts/kconfig/merge_config.sh -m .config "$fragment" >"$kdir_root/merge_config.log" 2>&1 \
  || { cat "$kdir_root/merge_config.log" >&2; die "merge_config.sh failed"; }
make -s olddefconfig

# Every =y (and =value) line of the fragment must have survived olddefconfig;
# "is not set" lines must not have turned into =y.
missing=0
while IFS= read -r line; do
  case "$line" in
    CONFIG_*=*)
      if ! grep -qxF "$line" .config; then
        have=$(grep -E "^(# )?${line%%=*}[= ]" .config || echo "(absent)")
        log "fragment line lost: $line   (.config has: $have)"
        missing=1
      fi ;;
    "# CONFIG_"*" is not set")
      opt=${line#\# }; opt=${opt%% *}
      if grep -qE "^$opt=" .config; then
        log "fragment wants $opt unset but .config has: $(grep -E "^$opt=" .config)"
        missing=1
      fi ;;
  esac
done <"$fragment"
[[ $missing == 0 ]] || die "debug.config did not survive olddefconfig (see above); fix the fragment's dependencies"

log "compiling bzImage (this takes a while)..."
make -j"$jobs" bzImage >"$kdir_root/build.log" 2>&1 \
  || { tail -n 50 "$kdir_root/build.log" >&2; die "bzImage build failed (log: $kdir_root/build.log)"; }
make -j"$jobs" modules_prepare >>"$kdir_root/build.log" 2>&1 \
  || { tail -n 50 "$kdir_root/build.log" >&2; die "modules_prepare failed (log: $kdir_root/build.log)"; }
# A module build against this tree wants Module.symvers; vmlinux symbols are
# listed there after a full build. Modules are all built in (allnoconfig +
# =y), so `make modules` only produces vmlinux's symvers.
make -j"$jobs" modules >>"$kdir_root/build.log" 2>&1 \
  || { tail -n 50 "$kdir_root/build.log" >&2; die "make modules failed (log: $kdir_root/build.log)"; }
cp arch/x86/boot/bzImage "$kdir_root/bzImage"
kver=$(make -s kernelrelease)
end=$(date +%s)
echo "kernel $kver built in $((end - start))s on $(date -u +%FT%TZ)" >"$kdir_root/stamp"
log "done: $(cat "$kdir_root/stamp")"
echo "$kdir_root"
