#!/usr/bin/env bash
# The install, as a user does it, tested end to end (as root, on the host):
#
#   sudo bash test/vm/dkms.sh
#
# 1. packaging/install.sh --kernel <stock> --no-start: DKMS builds and installs
#    vordr.ko for Debian's stock kernel; the DKMS source tree holds kmod/,
#    defs.x and dkms.conf and nothing else; the build has no warning.
# 2. AUTOINSTALL: with the module removed for that kernel, the hook apt runs
#    for a newly installed kernel (/etc/kernel/postinst.d/dkms) builds and
#    installs it again.
# 3. test/vm/run.sh dkms: the VM loads it with `modprobe vordr` from
#    /lib/modules/<stock>/updates/dkms (the host's, over 9p) and runs every
#    test/vm/*.test.mjs with it (boot.test.mjs among them).
# 4. upgrade: installing a newer version removes the old one from DKMS and
#    keeps the rules (/etc/vordr, /etc/modprobe.d/vordr.conf) byte for byte.
# 5. packaging/uninstall.sh leaves nothing behind.
# It refuses to run where vordr is installed (VORDR_DKMS_FORCE=1: uninstall
# it first); nothing is installed after.
# Last line: "N passed, M failed"; exit status non-zero on any failure.
#
# Sourced (by lib.sh, flavor dkms) it only defines dkms_module.

# dkms_module KVER: set VORDR_KO_PATH to the vordr.ko DKMS installed for
# kernel KVER, after checking that it was built from this tree's sources
# without a warning. Needs lib.sh's vm_log and REPO.
dkms_module() {
  local kver=$1 ver st tree log f path
  ver=$(sed -n 's/^PACKAGE_VERSION="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$REPO/dkms.conf")
  st=$(dkms status -m vordr -v "$ver" -k "$kver" 2>/dev/null)
  if [[ $st != *": installed"* ]]; then
    vm_log "vordr $ver is not installed by DKMS for $kver (dkms status: '${st:-nothing}');"
    vm_log "install it: sudo packaging/install.sh --kernel $kver"
    return 1
  fi
  tree=/usr/src/vordr-$ver
  for f in dkms.conf defs.x kmod/Kbuild kmod/Makefile "${REPO}"/kmod/*.[ch]; do
    f=${f#"$REPO"/}
    [[ $f == *.mod.c ]] && continue
    cmp -s "$REPO/$f" "$tree/$f" || { vm_log "$tree/$f differs from $REPO/$f: reinstall (packaging/install.sh --kernel $kver)"; return 1; }
  done
  log=/var/lib/dkms/vordr/$ver/$kver/$(uname -m)/log/make.log
  [[ -f $log ]] || { vm_log "no DKMS build log $log"; return 1; }
  if grep -E 'warning:|WARNING:' "$log" >/dev/null; then
    grep -E -B2 -A3 'warning:|WARNING:' "$log" | sed "s/^/  dkms| /" >&2
    vm_log "the DKMS build printed warnings: treated as a failure"
    return 1
  fi
  path=$(modinfo -k "$kver" -n vordr 2>/dev/null)
  if [[ $path != /lib/modules/$kver/updates/dkms/vordr.ko* ]]; then
    vm_log "modprobe would load '$path' for $kver, not DKMS's module in updates/dkms"
    return 1
  fi
  VORDR_KO_PATH=$path
  vm_log "module installed by DKMS: $VORDR_KO_PATH ($st)"
}

[[ ${BASH_SOURCE[0]} == "$0" ]] || return 0

set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VM_FLAVOR=dkms
[[ $(id -u) == 0 ]] || { echo "dkms.sh: run as root" >&2; exit 2; }
command -v dkms >/dev/null || { echo "dkms.sh: dkms is not installed (apt-get install dkms)" >&2; exit 2; }

pass=0 fail=0 n=0
ok() { n=$((n + 1)); pass=$((pass + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n - $*"; }
# check DESCRIPTION COMMAND...: one test; the command's output is shown on failure.
check() {
  local what=$1 out; shift
  if out=$("$@" 2>&1); then ok "$what"; else not_ok "$what"; sed 's/^/    # /' <<<"$out"; fi
}

KVER=$(stock_kernel_version) || exit 2
VER=$(sed -n 's/^PACKAGE_VERSION="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$REPO/dkms.conf")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
echo "# vordr $VER, DKMS for kernel $KVER"

if [[ -n $(dkms status -m vordr 2>/dev/null) || -e /usr/lib/vordr || -e /etc/vordr ]]; then
  # The test ends with an uninstall, rules and all: not on someone's real install.
  if [[ ${VORDR_DKMS_FORCE:-0} != 1 ]]; then
    echo "dkms.sh: vordr is installed here (dkms status, /usr/lib/vordr or /etc/vordr); this test would" >&2
    echo "dkms.sh: remove it with its rules. Uninstall it first, or set VORDR_DKMS_FORCE=1." >&2
    exit 2
  fi
  echo "# VORDR_DKMS_FORCE=1: uninstalling the vordr installed before"
  bash "$REPO/packaging/uninstall.sh" | sed 's/^/# /'
fi

# 1. install -----------------------------------------------------------------
check "packaging/install.sh --kernel $KVER installs" \
  bash "$REPO/packaging/install.sh" --kernel "$KVER" --no-start

source_tree_is_exact() {
  local want got
  want=$(cd "$REPO" && { echo dkms.conf; echo defs.x; echo kmod/Kbuild; echo kmod/Makefile
    ls kmod/*.[ch] | grep -v '\.mod\.c$'; } | sort)
  got=$(cd "/usr/src/vordr-$VER" && find . -type f | sed 's|^\./||' | sort)
  [[ $want == "$got" ]] || { diff <(echo "$want") <(echo "$got"); return 1; }
}
check "the DKMS source tree /usr/src/vordr-$VER is kmod/, defs.x, dkms.conf and nothing else" source_tree_is_exact
check "DKMS built it for $KVER from these sources without a warning, modprobe finds it in updates/dkms" \
  dkms_module "$KVER"
signed_by_mok() {
  local serial key
  serial=$(openssl x509 -inform DER -in /var/lib/dkms/mok.pub -noout -serial) || return 1
  key=$(modinfo -k "$KVER" -F sig_key vordr | tr -d ':\n')
  echo "certificate ${serial}, module signed by '$(modinfo -k "$KVER" -F signer vordr)' key $key"
  [[ -n $key && ${serial#serial=} == "$key" ]]
}
if command -v openssl >/dev/null && [[ -f /var/lib/dkms/mok.pub ]]; then
  check "signed with DKMS's MOK key, the certificate /var/lib/dkms/mok.pub that Secure Boot users enroll" signed_by_mok
else
  echo "# SKIP signature check (no openssl or no /var/lib/dkms/mok.pub: DKMS did not sign)"
fi
check "the installed vordr command runs" /usr/bin/vordr --help
check "vordr.service, modules-load.d and modprobe.d files installed" \
  test -f /lib/systemd/system/vordr.service -a -f /usr/lib/modules-load.d/vordr.conf -a -f /etc/modprobe.d/vordr.conf
check "vordr.service is enabled for multi-user.target" \
  test -L /etc/systemd/system/multi-user.target.wants/vordr.service
if command -v systemd-analyze >/dev/null; then
  check "systemd-analyze verify vordr.service" systemd-analyze verify /lib/systemd/system/vordr.service
else
  echo "# SKIP systemd-analyze verify (no systemd-analyze)"
fi

# 2. AUTOINSTALL ---------------------------------------------------------------
autoinstall() {
  # As for a kernel installed after vordr: added to DKMS, not built for it.
  dkms remove "vordr/$VER" -k "$KVER" >/dev/null || return 1
  [[ -n $(dkms status -m vordr -v "$VER") ]] || dkms add "vordr/$VER" >/dev/null || return 1
  if modinfo -k "$KVER" -n vordr 2>/dev/null; then echo "still installed after dkms remove -k"; return 1; fi
  [[ $(dkms status -m vordr -v "$VER" -k "$KVER") != *"installed"* ]] || { echo "still installed"; return 1; }
  # What apt runs when a kernel is installed (linux-image-*'s postinst).
  /etc/kernel/postinst.d/dkms "$KVER" || return 1
  dkms status -m vordr -v "$VER" -k "$KVER"
  [[ $(dkms status -m vordr -v "$VER" -k "$KVER") == *": installed"* ]] && dkms_module "$KVER"
}
check "AUTOINSTALL: the kernel postinst hook rebuilds and installs it for $KVER" autoinstall

# 3. the VM loads it with modprobe and passes the tests -------------------------
echo "# test/vm/run.sh dkms"
# The end-to-end and boot-time tests (the engine's own run on stock and
# debug in npm test); VORDR_TESTS= (empty) runs them all.
VORDR_TESTS=${VORDR_TESTS-"test/vm/e2e.test.mjs test/vm/boot.test.mjs test/vm/smoke.test.mjs"} \
VORDR_QUIET=${VORDR_QUIET:-1} bash "$VM_DIR/run.sh" dkms | tee "$TMP/vm.log" | sed 's/^/# /'
vm_rc=${PIPESTATUS[0]}
vm_line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$TMP/vm.log" | tail -n1)
if [[ $vm_rc == 0 ]]; then ok "VM (modprobe of the DKMS module): $vm_line"; else not_ok "VM (modprobe of the DKMS module): ${vm_line:-no result}"; fi

# 4. upgrade keeps the rules -------------------------------------------------
NEW=$VER.1
upgrade() {
  printf 'block tcp /usr/bin/curl\nallow any "/opt/my app/"\n' >/etc/vordr/rules
  printf 'options vordr unkrule=allow rules=block:tcp:/usr/bin/curl,allow:any:/opt/my%%20app/\n' >/etc/modprobe.d/vordr.conf
  cp /etc/vordr/rules "$TMP/rules"; cp /etc/modprobe.d/vordr.conf "$TMP/modprobe.conf"
  local src=$TMP/src-$NEW
  mkdir -p "$src/daemon" "$src/addon/build"
  cp -a "$REPO"/{package.json,package-lock.json,dkms.conf,defs.x,kmod,packaging,node_modules} "$src/"
  cp -a "$REPO/daemon/dist" "$src/daemon/"
  cp -a "$REPO/addon/index.js" "$src/addon/"; cp -a "$REPO/addon/build/Release" "$src/addon/build/"
  sed -i "s/^PACKAGE_VERSION=.*/PACKAGE_VERSION=\"$NEW\"/" "$src/dkms.conf"
  node -e 'const f=process.argv[1],p=require(f);p.version=process.argv[2];require("fs").writeFileSync(f,JSON.stringify(p,null,2))' \
    "$src/package.json" "$NEW"
  bash "$src/packaging/install.sh" --kernel "$KVER" --no-start || return 1
  dkms status -m vordr
  [[ $(dkms status -m vordr) == "vordr/$NEW, $KVER, $(uname -m): installed" ]] || { echo "dkms status is not just $NEW"; return 1; }
  [[ ! -e /usr/src/vordr-$VER && ! -e /var/lib/dkms/vordr/$VER ]] || { echo "$VER left in DKMS"; return 1; }
  [[ $(node -p 'require("/usr/lib/vordr/package.json").version') == "$NEW" ]] || { echo "daemon not upgraded"; return 1; }
  cmp /etc/vordr/rules "$TMP/rules" && cmp /etc/modprobe.d/vordr.conf "$TMP/modprobe.conf"
}
check "upgrade to $NEW: the old version leaves DKMS, the rules are kept" upgrade

# 5. uninstall -------------------------------------------------------------------
nothing_left() {
  local left=() p
  [[ -z $(dkms status -m vordr) ]] || left+=("dkms status: $(dkms status -m vordr)")
  for p in /usr/src/vordr-* /var/lib/dkms/vordr /lib/modules/*/updates/dkms/vordr.ko* \
    /usr/lib/vordr /usr/bin/vordr /lib/systemd/system/vordr.service /etc/systemd/system/*/vordr.service \
    /usr/lib/modules-load.d/vordr.conf /etc/modprobe.d/vordr.conf /etc/vordr; do
    [[ -e $p || -L $p ]] && left+=("$p")
  done
  grep -l 'vordr' /lib/modules/*/modules.dep 2>/dev/null | while read -r p; do echo "$p names vordr"; done | grep . && left+=(modules.dep)
  modinfo -k "$KVER" vordr >/dev/null 2>&1 && left+=("modinfo -k $KVER vordr")
  ((${#left[@]} == 0)) || { printf 'left: %s\n' "${left[@]}"; return 1; }
}
check "packaging/uninstall.sh succeeds" bash "$REPO/packaging/uninstall.sh"
check "nothing is left behind (dkms status, files, modules.dep)" nothing_left

echo "1..$n"
echo "$pass passed, $fail failed"
((fail == 0))
