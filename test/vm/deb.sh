#!/usr/bin/env bash
# The Debian packages, built and used as a user would (no root needed):
#
#   bash test/vm/deb.sh
#
# On the host: packaging/deb.sh builds the tree's version A (debian/changelog)
# and, for the upgrade, the same tree as version B = A.1 (--version);
# lintian checks the four .debs (an error fails the test; its warnings are
# listed). In the VM (Debian's stock kernel, the host's / read-only under a
# tmpfs overlay, so dpkg sees the host's nodejs, libnl, dkms and kernel
# headers): test/vm/deb-guest.sh installs A with apt-get, DKMS builds the
# module there, modprobe, a query, AUTOINSTALL, the upgrade to B keeping the
# rules byte for byte, and apt-get purge leaving no file behind.
#
# Environment: VORDR_DEB_BUILT=DIR reuses DIR/a and DIR/b from an earlier
# run (default: build into test/vm/out/deb/pkgs); VORDR_TIMEOUT (the VM part: 2,700 s for the ci form, 5,400 s for the full one);
# VORDR_DEB_VM=0 builds A only (its unit tests skipped: nocheck), checks it
# with lintian and its node_modules, and stops before the VM;
# VORDR_DEB_VM=ci (what CI runs) then installs A in the VM, lets the daemon
# save rules and purges, with one DKMS build: AUTOINSTALL and the upgrade,
# two more DKMS builds of about 14 minutes each under emulation, are the
# full form's (VORDR_DEB_VM=1, the default), run by hand.
# Last line: "N passed, M failed"; exit status non-zero on any failure.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
VM_FLAVOR=deb
dir=$OUT/deb
mkdir -p "$dir"

pass=0 fail=0 n=0
ok() { n=$((n + 1)); pass=$((pass + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n - $*"; }
finish() { echo "1..$n"; echo "$pass passed, $fail failed"; ((fail == 0)); exit; }

VER_A=$(cd "$REPO" && dpkg-parsechangelog -S Version) || { not_ok "dpkg-parsechangelog"; finish; }
VER_B=$VER_A.1
pkgs=${VORDR_DEB_BUILT:-$dir/pkgs}
vm=${VORDR_DEB_VM:-1}
case $vm in 0|ci|1) ;; *) echo "VORDR_DEB_VM is 0, ci or 1, not $vm" >&2; exit 2 ;; esac
versions=(a b); [[ $vm == 1 ]] || versions=(a)
if [[ -z ${VORDR_DEB_BUILT:-} ]]; then
  for v in "${versions[@]}"; do
    args=(--out "$pkgs/$v"); [[ $v == b ]] && args+=(--version "$VER_B")
    t0=$(date +%s)
    # B is the same code: its unit tests ran with A.
    if o=$(DEB_BUILD_OPTIONS=$([[ $v == b || $vm != 1 ]] && echo nocheck) bash "$REPO/packaging/deb.sh" "${args[@]}" 2>&1); then
      ok "packaging/deb.sh ${args[*]} ($(( $(date +%s) - t0 )) s)"
    else
      not_ok "packaging/deb.sh ${args[*]}"; sed 's/^/    # /' <<<"$o"; finish
    fi
    sed 's/^/# /' <<<"$o"
  done
fi
for v in "${versions[@]}"; do
  ls "$pkgs/$v"/vordr-dkms_*_all.deb "$pkgs/$v"/vordr_*.deb >/dev/null || { not_ok "no .debs in $pkgs/$v"; finish; }
done

if command -v lintian >/dev/null; then
  debs=("$pkgs"/a/*.deb); [[ $vm == 1 ]] && debs+=("$pkgs"/b/*.deb)
  lint=$(lintian --fail-on error "${debs[@]}" 2>&1); lrc=$?
  sed 's/^/# lintian: /' <<<"$lint"
  if ((lrc == 0)); then ok "lintian: no error ($(grep -c '^W:' <<<"$lint") warning line(s))"; else not_ok "lintian reports errors"; fi
else
  echo "# SKIP lintian (not installed)"
fi

no_dev_modules() {
  # The vordr package holds the production dependencies only.
  local want got
  want=$(cd "$REPO" && npm ls --omit=dev --omit=optional --all --parseable 2>/dev/null | tail -n +2 \
    | sed "s|^$REPO/||" | grep -v '/@rollup/' | LC_ALL=C sort)
  got=$(dpkg-deb -c "$pkgs"/a/vordr_*.deb | awk '{print $6}' \
    | sed -n 's|^\./usr/lib/vordr/\(node_modules/\(@[^/]*/\)\{0,1\}[^/@.][^/]*\)/$|\1|p' | LC_ALL=C sort -u)
  [[ $want == "$got" ]] || { diff <(echo "$want") <(echo "$got"); return 1; }
}
if o=$(no_dev_modules 2>&1); then ok "vordr's node_modules are the production dependencies, nothing else"; else not_ok "vordr's node_modules"; sed 's/^/    # /' <<<"$o"; fi

# The VM ----------------------------------------------------------------------
[[ $vm == 0 ]] && { echo "# VORDR_DEB_VM=0: the VM part (install, DKMS, upgrade, purge) not run"; finish; }
command -v qemu-system-x86_64 >/dev/null || { not_ok "qemu-system-x86_64 missing"; finish; }
resolve_kernel stock || { not_ok "no stock kernel"; finish; }
build_initramfs deb || { not_ok "initramfs"; finish; }
SHARE=$dir/share
rm -rf "$SHARE"; mkdir -p "$SHARE/a" "$SHARE/b"
cp "$pkgs"/a/*.deb "$SHARE/a/"; [[ $vm == 1 ]] && cp "$pkgs"/b/*.deb "$SHARE/b/"
{
  printf 'VORDR_REPO=%q\nVORDR_FLAVOR=deb\nVORDR_MODE=deb\nDEB_FORM=%q\n' "$REPO" "$([[ $vm == ci ]] && echo ci || echo full)"
  printf 'VORDR_KO=none\nVORDR_MODULE=vordr\n'
  printf 'DEB_A=a\nDEB_B=b\nVER_A=%q\nVER_B=%q\n' "$VER_A" "$VER_B"
} >"$SHARE/vordr.env"
printf '%s' "$REPO" >"$SHARE/repo"
qemu_cmd deb
tmo=${VORDR_TIMEOUT:-$([[ $vm == ci ]] && echo 2700 || echo 5400)}
vm_log "booting (timeout ${tmo}s)"
t0=$(date +%s)
timeout -k 10 "$tmo" "${QEMU_CMD[@]}" -serial stdio </dev/null 2>&1 | sed -u 's/\r$//' >"$dir/console.log"
qrc=${PIPESTATUS[0]}
echo "# VM ran $(( $(date +%s) - t0 )) s (qemu exit $qrc); console in $dir/console.log"
[[ -f $SHARE/times.txt ]] && sed 's/^/# VM /' "$SHARE/times.txt"
if [[ ! -f $SHARE/tap.txt || ! -f $SHARE/status ]]; then
  not_ok "the VM gave no results (qemu exit $qrc)"; tail -n 30 "$dir/console.log" | sed 's/^/    # /'; finish
fi
while IFS= read -r line; do
  case $line in
    "ok "*) ok "vm: ${line#ok * - }" ;;
    "not ok "*) not_ok "vm: ${line#not ok * - }" ;;
    "    #"*|"# "*) echo "$line" ;;
  esac
done <"$SHARE/tap.txt"
grep -q '^# pass ' "$SHARE/tap.txt" || not_ok "the VM's test did not finish ($(cat "$SHARE/status"))"
bad=$(klog_hits "$SHARE/dmesg.txt")
if [[ -z $bad ]]; then ok "vm: kernel log clean"; else not_ok "vm: kernel log"; sed 's/^/    # /' <<<"$bad"; fi
finish
