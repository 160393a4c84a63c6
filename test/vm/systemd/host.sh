# Host side of the systemd flavor (sourced by test/vm/run.sh, after lib.sh's
# resolve_kernel and build_module): what the VM's pre-boot step
# (test/vm/systemd/stage.sh) needs and is slow to make under emulation.
#
# systemd_host_prepare DIR: in DIR,
#   daemon.tar  what packaging/install.sh copies to /usr/lib/vordr (package.json,
#               daemon/dist, the addon, the production node_modules from
#               npm ls --omit=dev), as one file: thousands of small files
#               over 9p take a minute in the VM;
#   modules/    the module index files (modules.dep, ...) of the stock kernel's
#               modules plus $VORDR_KO_PATH at updates/dkms/vordr.ko, made by
#               depmod here: depmod -a over 9p takes minutes in the VM.
systemd_host_prepare() {
  local dir=$1 root="$1/modroot" kdir
  local -a prod
  mapfile -t prod < <(cd "$REPO" && npm ls --omit=dev --all --parseable 2>/dev/null | tail -n +2 | sed "s|^$REPO/||")
  ((${#prod[@]})) || { vm_log "npm ls --omit=dev in $REPO listed nothing"; return 1; }
  local p; for p in "${prod[@]}"; do [[ $p == node_modules/* ]] || { vm_log "unexpected dependency path $p"; return 1; }; done
  tar -C "$REPO" --owner=0 --group=0 -cf "$dir/daemon.tar" package.json daemon/dist addon/index.js \
    addon/build/Release/vordr.node "${prod[@]}" || { vm_log "tar of the daemon failed"; return 1; }
  [[ -n "$MODULES_DIR" ]] || { vm_log "the systemd flavor needs a modular kernel (stock)"; return 1; }
  kdir="$root/lib/modules/$KERNEL_VERSION"
  rm -rf "$root" "$dir/modules"
  mkdir -p "$kdir/updates/dkms" "$dir/modules"
  cp -rs "$MODULES_DIR/kernel" "$kdir/kernel"
  cp "$MODULES_DIR"/modules.{order,builtin,builtin.modinfo} "$kdir/"
  cp "$VORDR_KO_PATH" "$kdir/updates/dkms/vordr.ko"
  depmod -b "$root" "$KERNEL_VERSION" || { vm_log "depmod -b $root failed"; return 1; }
  grep -q '^updates/dkms/vordr.ko:' "$kdir/modules.dep" || { vm_log "depmod did not index vordr.ko"; return 1; }
  cp "$kdir"/modules.* "$dir/modules/"
  rm -f "$dir"/modules/modules.{order,builtin,builtin.modinfo}
  rm -rf "$root"
}
