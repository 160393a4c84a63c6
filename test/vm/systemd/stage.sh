#!/bin/bash
# Pre-boot step of the systemd flavor (test/vm/systemd.sh). test/vm/init runs
# it chrooted into the VM's root (the host's / over 9p with a tmpfs overlay)
# before it hands that root to systemd, so nothing here is seen by a running
# vordr: it is the machine as it was left before this boot.
#
# 1. install_vordr: vordr installed as a user would have it (the one place to
#    switch to `dpkg -i` of the .debs).
# 2. the VM: a fresh machine-id, an empty fstab (the host's names its disks),
#    a volatile journal, the host's units a VM without network must not run
#    masked, and the test units (test/vm/systemd/units/) in /etc/systemd/system.
# 3. the saved policy: VORDR_SYSD_RULES rules put into the module by the real
#    `vordr -f` and saved by its `save` (the rules file and whatever the boot
#    path reads, derived from it), then the module is unloaded again: the boot
#    that follows starts with the policy installed and nothing loaded.
set -euo pipefail
out=/mnt/out
# shellcheck disable=SC1091
source "$out/vordr.env"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 LC_ALL=C.UTF-8
repo=$VORDR_REPO
here=$repo/test/vm/systemd
kver=$(uname -r)
say() { echo "vordr-stage: $(cut -d' ' -f1 /proc/uptime)s: $*"; }
main() {
say "staging the systemd boot (kernel $kver, ${VORDR_SYSD_RULES:-6} saved rules)"

# ---- 1. the install ------------------------------------------------------------
# INSTALL-STEP (lead: replace the body with `dpkg -i /mnt/out/debs/*.deb` or
# `apt-get install /mnt/out/debs/*.deb` once debian/ builds them; the rest of
# the flavor does not depend on how vordr got installed).
# Until then: the files packaging/install.sh installs, at its paths, except
# that the module is the one run.sh built on the host (W=1, no warnings)
# placed where DKMS puts it, with the module index depmod made on the host
# (test/vm/systemd/host.sh): DKMS's build of kmod/ and depmod -a take minutes
# under emulation.
install_vordr() {
  local lib=/usr/lib/vordr
  install -D -m 0644 "$VORDR_KO" "/lib/modules/$kver/updates/dkms/vordr.ko"
  cp "$out"/modules/modules.* "/lib/modules/$kver/"
  say "install: module in place"
  rm -rf "$lib"
  install -d -m 0755 "$lib"
  tar -C "$lib" --no-same-owner -xf "$out/daemon.tar"
  chmod 0755 "$lib/daemon/dist/cli.js"
  say "install: daemon copied"
  printf '#!/bin/sh\n# Installed by vordr test/vm/systemd/stage.sh\nexec %q %q "$@"\n' \
    "$(command -v node)" "$lib/daemon/dist/cli.js" >/usr/bin/vordr
  chmod 0755 /usr/bin/vordr
  install -D -m 0644 "$repo/packaging/vordr.service" /lib/systemd/system/vordr.service
  install -D -m 0644 "$repo/packaging/modules-load.conf" /usr/lib/modules-load.d/vordr.conf
  [[ -e /etc/modprobe.d/vordr.conf ]] || install -D -m 0644 "$repo/packaging/modprobe.conf" /etc/modprobe.d/vordr.conf
  install -d -m 0755 /etc/vordr
  systemctl enable vordr.service
}
say "installing vordr"
install_vordr
say "installed"

# ---- 2. the VM -------------------------------------------------------------------
# The host may be a container (/.dockerenv): systemd would believe it is in
# one too and ignore the kernel command line (systemd.unit=).
rm -f /.dockerenv /run/.containerenv
# A machine-id of its own (not the host's, which /var/lib/dbus/machine-id
# would give systemd-machine-id-setup).
systemd-id128 new >/etc/machine-id.new && mv /etc/machine-id.new /etc/machine-id
printf '# test/vm/systemd/stage.sh: the VM mounts nothing from fstab (its root is set up by /init)\n' >/etc/fstab
install -d /etc/systemd/journald.conf.d
printf '[Journal]\nStorage=volatile\n' >/etc/systemd/journald.conf.d/vordr-vm.conf
# Pulled in by the boot (basic.target, the host's sysinit.target.wants) but
# of no use without a network: NTP, and timers (apt-daily, ...) that would
# start jobs mid-test. Getty and network units are not pulled in at all: the
# boot target is vordr-test.target, not multi-user.target.
systemctl mask systemd-timesyncd.service timers.target
for u in "$here"/units/*; do
  sed "s|@REPO@|$repo|g; s|@TIMEOUT@|${VORDR_SYSD_TEST_TIMEOUT:-900}|g" "$u" >"/etc/systemd/system/$(basename "$u")"
done

# ---- 3. the saved policy -------------------------------------------------------------
# The test's blocked and allowed applications: copies of python3 (the rules
# name them by path).
python=$(realpath /usr/bin/python3)
for d in blocked allowed; do
  install -D -m 0755 "$python" "/opt/vordr-test/$d/python3"
done
say "saving the policy with the module loaded"
modprobe vordr
# As the service would first: the saved policy (none yet: the defaults) in
# force, so what `save` records is not the closed boot state.
/usr/bin/vordr --load-policy
node "$here/policy.mjs" "${VORDR_SYSD_RULES:-6}" /usr/bin/vordr
rmmod vordr
say "saved; module unloaded. /etc/vordr/rules has $(grep -c '^[ab]' /etc/vordr/rules) rule lines"
cp /etc/vordr/rules "$out/rules.staged"
say "done"
}
main 2>&1 | tee "$out/stage.log"
exit "${PIPESTATUS[0]}"
