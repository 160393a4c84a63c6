#!/bin/bash
# The package test inside the VM (test/vm/deb.sh boots it; guest.sh runs this
# in mode "deb"), as root on the overlay root, where dpkg and apt see the
# host's installed packages (nodejs, libnl, dkms, the stock kernel's headers)
# and nothing of vordr. TAP on standard output and in /mnt/out/tap.txt.
#
#  1. apt-get install ./vordr-dkms_A.deb ./vordr_A.deb: DKMS builds the module
#     for the running (stock) kernel from /usr/src/vordr-A, which holds
#     kmod/, defs.x and dkms.conf and nothing else, without a warning;
#     modprobe loads it from updates/dkms; `vordr` on PATH runs a query;
#     the unit is enabled.
#  2. AUTOINSTALL: with the module removed for this kernel, the hook apt runs
#     for a newly installed kernel (/etc/kernel/postinst.d/dkms) rebuilds it.
#  3. The daemon saves rules (/etc/vordr/rules, modprobe.d), the user adds a
#     line by hand; the upgrade to version B (apt-get install of B's .debs)
#     leaves A out of DKMS, reloads the module, and keeps both files byte for
#     byte; the new daemon and module enforce the saved rules.
#  4. apt-get purge vordr vordr-dkms: the module is unloaded, DKMS knows no
#     vordr, and the files under /usr /etc /var/lib are those before step 1:
#     the overlay's upper layer holds no path the host's root lacks, and no
#     whiteout (test/vm/init binds both layers under /mnt/layers).
set -u
out=/mnt/out
source "$out/vordr.env"   # VORDR_REPO, DEB_A, DEB_B, VER_A, VER_B
export DEBIAN_FRONTEND=noninteractive
KVER=$(uname -r)
ARCH=$(uname -m)
n=0 fail=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n - $*"; }
# check DESCRIPTION COMMAND...: one test; the command's output is shown on failure.
check() {
  local what=$1 o; shift
  if o=$("$@" 2>&1); then ok "$what"; else not_ok "$what"; sed 's/^/    # /' <<<"$o"; fi
}
# timed VAR COMMAND...: run it, its seconds in VAR (tenths).
timed() {
  local var=$1 t0=${EPOCHREALTIME/./} rc; shift
  "$@"; rc=$?
  printf -v "$var" '%d.%d' $(( (${EPOCHREALTIME/./} - t0) / 1000000 )) $(( (${EPOCHREALTIME/./} - t0) / 100000 % 10 ))
  return $rc
}

# What the VM changed on its root, the overlay (test/vm/init): every entry
# of the upper layer (/mnt/layers/rw/upper) under /usr /etc /var/lib, as
# "new" (the host's root, the lower layer, has no such path), "gone" (a
# whiteout: a path of the lower layer deleted) or nothing (a copy-up: the
# path was there before and may have been modified, like dpkg's status).
# dpkg's and apt's own bookkeeping and DKMS's signing key (made at the first
# DKMS build of any module, shared by all; see docs/INSTALL.md) are left out.
LAYERS=/mnt/layers
changes() {
  local up=$LAYERS/rw/upper p
  (cd "$up" && find usr etc var/lib \( -path var/lib/dpkg -o -path var/lib/apt -o -path var/cache -o -path var/log \) -prune -o -print 2>/dev/null) \
    | LC_ALL=C sort | while IFS= read -r p; do
      if [[ -c $up/$p && $(stat -c %t:%T "$up/$p") == 0:0 ]]; then echo "gone /$p"
      elif [[ ! -e $LAYERS/lower/$p && ! -L $LAYERS/lower/$p ]]; then echo "new /$p"
      fi
    done | grep -v -x -e 'new /var/lib/dkms' -e 'new /var/lib/dkms/mok.key' -e 'new /var/lib/dkms/mok.pub'
}
# apt-get install: its output in /tmp/apt.log and, as it goes, on the console.
apt_install() {
  apt-get install -y -q --no-install-recommends "$@" </dev/null 2>&1 | tee /tmp/apt.log >/dev/console
  return "${PIPESTATUS[0]}"
}

echo "# vordr packages $VER_A -> $VER_B, kernel $KVER"
# The VM's /dev is a bare devtmpfs: dkms needs /dev/fd for <(...).
[[ -e /dev/fd ]] || ln -s /proc/self/fd /dev/fd
# man-db's trigger rebuilds its whole index over 9p (many minutes under
# TCG); the host's flag file goes for the VM's run (before the first snapshot).
rm -f /var/lib/man-db/auto-update
if [[ ! -d $LAYERS/rw/upper || ! -d $LAYERS/lower/usr ]]; then
  not_ok "the overlay's layers are not at $LAYERS (test/vm/init)"
fi
changes >/tmp/before.txt
echo "# before the install, the VM's root differs from the host's in $(wc -l </tmp/before.txt) path(s) under /usr /etc /var/lib"
sed 's/^/#   /' /tmp/before.txt
dmesg -n 1

# 1. install -----------------------------------------------------------------
if timed t_install apt_install "$out/$DEB_A/vordr-dkms_${VER_A}_all.deb" "$out/$DEB_A"/vordr_"${VER_A}"_*.deb; then
  ok "apt-get install ./vordr-dkms_${VER_A}_all.deb ./vordr_${VER_A}_*.deb (${t_install} s)"
else
  not_ok "apt-get install of $VER_A"; sed 's/^/    # /' /tmp/apt.log
fi
cp /tmp/apt.log /tmp/install.log
echo "time install ${t_install}" >>"$out/times.txt"
grep -E '^(Setting up|Building|Signing|DKMS: install)' /tmp/install.log | sed 's/^/# /'

tree_is_exact() {
  local want got
  want=$(cd "$VORDR_REPO" && { echo dkms.conf; echo defs.x; echo kmod/Kbuild; echo kmod/Makefile
    ls kmod/*.[ch] | grep -v '\.mod\.c$'; } | LC_ALL=C sort)
  got=$(cd "/usr/src/vordr-$1" && find . -type f | sed 's|^\./||' | LC_ALL=C sort)
  [[ $want == "$got" ]] || { diff <(echo "$want") <(echo "$got"); return 1; }
  for f in defs.x kmod/Kbuild kmod/Makefile $(cd "$VORDR_REPO" && ls kmod/*.[ch] | grep -v '\.mod\.c$'); do
    cmp "$VORDR_REPO/$f" "/usr/src/vordr-$1/$f" || return 1
  done
  grep -x "PACKAGE_VERSION=\"$1\"" "/usr/src/vordr-$1/dkms.conf"
}
check "/usr/src/vordr-$VER_A is kmod/, defs.x and dkms.conf (version $VER_A), nothing else" tree_is_exact "$VER_A"
# dkms_built VERSION: DKMS installed it for this kernel, built without a
# warning, and modprobe finds it in updates/dkms.
dkms_built() {
  local st log path
  st=$(dkms status -m vordr -v "$1" -k "$KVER")
  echo "dkms status: $st"
  [[ $st == "vordr/$1, $KVER, $ARCH: installed" ]] || return 1
  log=/var/lib/dkms/vordr/$1/$KVER/$ARCH/log/make.log
  [[ -f $log ]] || { echo "no $log"; return 1; }
  if grep -E 'warning:|WARNING:' "$log"; then echo "the DKMS build printed warnings"; return 1; fi
  path=$(modinfo -k "$KVER" -n vordr) || return 1
  [[ $path == /lib/modules/$KVER/updates/dkms/vordr.ko* ]] || { echo "modprobe would load $path"; return 1; }
}
check "DKMS built and installed it for $KVER without a warning, in updates/dkms" dkms_built "$VER_A"
signed_by_mok() {
  local serial key
  serial=$(openssl x509 -inform DER -in /var/lib/dkms/mok.pub -noout -serial) || return 1
  key=$(modinfo -k "$KVER" -F sig_key vordr | tr -d ':\n')
  echo "certificate ${serial}, module signed by key $key"
  [[ -n $key && ${serial#serial=} == "$key" ]]
}
if command -v openssl >/dev/null && [[ -f /var/lib/dkms/mok.pub ]]; then
  check "signed with DKMS's MOK key (/var/lib/dkms/mok.pub, the certificate Secure Boot users enroll)" signed_by_mok
else
  echo "# SKIP signature check (no openssl or no /var/lib/dkms/mok.pub: DKMS did not sign)"
fi
load() {
  modprobe -v vordr | tee /tmp/modprobe.txt || return 1
  grep -q "^insmod /lib/modules/$KVER/updates/dkms/vordr.ko" /tmp/modprobe.txt && [[ -d /sys/module/vordr ]]
}
check "modprobe vordr loads DKMS's module" load
query() {
  local o; o=$(echo query | vordr 2>&1); local rc=$?
  echo "$o"; ((rc == 0)) && grep -q 'mode' <<<"$o"
}
check "vordr (on PATH: $(command -v vordr)) runs a query" query
check "vordr --version is $VER_A" bash -c "[[ \$(vordr --version) == 'vordr $VER_A' ]]"
check "vordr.service installed and enabled for multi-user.target, boot files in /usr/lib" \
  test -f /lib/systemd/system/vordr.service -a -L /etc/systemd/system/multi-user.target.wants/vordr.service \
    -a -f /usr/lib/modules-load.d/vordr.conf -a -f /usr/lib/modprobe.d/vordr.conf
if command -v systemd-analyze >/dev/null; then
  check "systemd-analyze verify vordr.service" systemd-analyze verify /lib/systemd/system/vordr.service
fi
check "man vordr" bash -c 'man -w vordr | grep -q /usr/share/man/man1/vordr.1'

# The CI form (DEB_FORM=ci, test/vm/deb.sh's VORDR_DEB_VM=ci): one DKMS
# build, so no AUTOINSTALL and no upgrade; the rules saved, then the purge.
form=${DEB_FORM:-full}
if [[ $form == ci ]]; then
  echo "# DEB_FORM=ci: AUTOINSTALL and the upgrade (two more DKMS builds) are the full form's"
fi

# 2. AUTOINSTALL ---------------------------------------------------------------
autoinstall() {
  modprobe -r vordr || return 1
  dkms remove "vordr/$VER_A" -k "$KVER" || return 1
  [[ -n $(dkms status -m vordr -v "$VER_A") ]] || dkms add "vordr/$VER_A" || return 1
  if modinfo -k "$KVER" -n vordr 2>/dev/null; then echo "still installed after dkms remove -k"; return 1; fi
  /etc/kernel/postinst.d/dkms "$KVER" || return 1   # what linux-image-*'s postinst runs
  dkms_built "$VER_A" && modprobe vordr
}
[[ $form == ci ]] || check "AUTOINSTALL: the kernel postinst hook rebuilds and installs it for $KVER" autoinstall

# 3. upgrade keeps the rules ---------------------------------------------------
save_rules() {
  printf 'block tcp /usr/bin/curl\nallow any "/opt/my app/"\nsave\n' | vordr || return 1
  printf '# added by hand\n' >>/etc/vordr/rules
  cat /etc/vordr/rules
  cp /etc/vordr/rules /tmp/rules.before && cp /var/lib/vordr/policy /tmp/policy.before
  # The boot policy derived from it: a header and its records (the path).
  head -c 8 /var/lib/vordr/policy | grep -q VORDRPOL && grep -qa /usr/bin/curl /var/lib/vordr/policy
}
check "the daemon saves the rules (/etc/vordr/rules) and derives the boot policy (/var/lib/vordr/policy)" save_rules
upgrade() {
loads_before=$(dmesg | grep -c 'vordr: loaded')
if timed t_upgrade apt_install "$out/$DEB_B/vordr-dkms_${VER_B}_all.deb" "$out/$DEB_B"/vordr_"${VER_B}"_*.deb; then
  ok "apt-get install of $VER_B's .debs upgrades (${t_upgrade} s)"
else
  not_ok "apt-get install of $VER_B"; sed 's/^/    # /' /tmp/apt.log
fi
echo "time upgrade ${t_upgrade}" >>"$out/times.txt"
upgraded() {
  dpkg-query -W -f='${Package} ${Version} ${Status}\n' vordr vordr-dkms
  [[ $(dpkg-query -W -f='${Version}' vordr) == "$VER_B" && $(dpkg-query -W -f='${Version}' vordr-dkms) == "$VER_B" ]] || return 1
  dkms status -m vordr
  [[ $(dkms status -m vordr) == "vordr/$VER_B, $KVER, $ARCH: installed" ]] || { echo "dkms status is not just $VER_B"; return 1; }
  [[ ! -e /usr/src/vordr-$VER_A && ! -e /var/lib/dkms/vordr/$VER_A ]] || { echo "$VER_A left in DKMS"; return 1; }
  tree_is_exact "$VER_B" && dkms_built "$VER_B"
  [[ $(vordr --version) == "vordr $VER_B" ]]
}
check "$VER_A left DKMS, $VER_B is built and installed, vordr --version says $VER_B" upgraded
check "the module was reloaded by the upgrade" bash -c "(( \$(dmesg | grep -c 'vordr: loaded') > $loads_before )) && test -d /sys/module/vordr"
check "/etc/vordr/rules kept byte for byte" cmp /etc/vordr/rules /tmp/rules.before
check "/var/lib/vordr/policy kept byte for byte" cmp /var/lib/vordr/policy /tmp/policy.before
enforced() {
  local o; o=$(echo query | vordr 2>&1) || { echo "$o"; return 1; }
  echo "$o"; grep -q '/usr/bin/curl' <<<"$o"
}
check "the new daemon and module have the saved rules in force (query)" enforced
}
[[ $form == ci ]] || upgrade

# 4. purge ---------------------------------------------------------------------
if timed t_purge apt-get purge -y -q vordr vordr-dkms </dev/null >/tmp/purge.log 2>&1; then
  ok "apt-get purge vordr vordr-dkms (${t_purge} s)"
else
  not_ok "apt-get purge"; sed 's/^/    # /' /tmp/purge.log
fi
echo "time purge ${t_purge}" >>"$out/times.txt"
gone() {
  local left=()
  [[ -d /sys/module/vordr ]] && left+=("the loaded module")
  [[ -z $(dkms status -m vordr) ]] || left+=("dkms status: $(dkms status -m vordr)")
  modinfo -k "$KVER" vordr >/dev/null 2>&1 && left+=("modinfo -k $KVER vordr")
  grep -l vordr /lib/modules/*/modules.dep >/dev/null 2>&1 && left+=("modules.dep names vordr")
  [[ -z $(dpkg-query -W -f='${Package}\n' 'vordr*' 2>/dev/null) ]] || left+=("dpkg knows: $(dpkg-query -W 'vordr*' 2>&1 | tr '\n' ' ')")
  ((${#left[@]} == 0)) || { printf 'left: %s\n' "${left[@]}"; return 1; }
}
check "no module loaded, none in DKMS or modules.dep, nothing in dpkg" gone
changes >/tmp/after.txt
check "the files under /usr /etc /var/lib are those before the install (none new, none gone)" diff /tmp/before.txt /tmp/after.txt

echo "1..$n"
echo "# pass $((n - fail))"
echo "# fail $fail"
((fail == 0))
