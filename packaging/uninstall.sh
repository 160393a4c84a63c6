#!/usr/bin/env bash
# Remove everything packaging/install.sh installed, as root:
#
#   sudo packaging/uninstall.sh [--keep-rules]
#
# Stops and disables vordr.service, unloads the module, removes every vordr
# version from DKMS (its modules in /lib/modules/*/updates/dkms, its build
# tree in /var/lib/dkms/vordr, its sources in /usr/src/vordr-*), the daemon
# (/usr/lib/vordr, /usr/bin/vordr), the unit, modules-load.d and modprobe.d
# files, and the rules (/etc/vordr) unless --keep-rules. It then checks that
# nothing is left and exits non-zero naming anything that is.
# DKMS's own signing key (/var/lib/dkms/mok.key, mok.pub) is shared by every
# DKMS module and stays.
set -euo pipefail

NAME=vordr
say() { echo "vordr-uninstall: $*"; }
die() { echo "vordr-uninstall: error: $*" >&2; exit 1; }
usage() { sed -n '2,4p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

keep_rules=0
while (($#)); do
  case $1 in
    --keep-rules) keep_rules=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done
[[ $(id -u) == 0 ]] || die "run as root (sudo $0)"

if command -v systemctl >/dev/null; then
  if [[ -d /run/systemd/system ]]; then
    systemctl disable --now vordr.service 2>/dev/null || true
  else
    systemctl disable vordr.service 2>/dev/null || true
  fi
fi
if [[ -d /sys/module/$NAME ]]; then
  say "unloading the module"
  modprobe -r "$NAME" || rmmod "$NAME" || die "cannot unload $NAME (in use?)"
fi

if command -v dkms >/dev/null; then
  while read -r v; do
    [[ -n $v ]] || continue
    say "dkms remove $NAME/$v --all"
    dkms remove "$NAME/$v" --all >/dev/null
  done < <(dkms status -m "$NAME" 2>/dev/null | sed -n "s|^$NAME/\([^,:]*\)[,:].*|\1|p" | sort -u)
fi
for d in /usr/src/"$NAME"-*; do
  [[ -f $d/dkms.conf ]] && grep -q "^PACKAGE_NAME=\"\{0,1\}$NAME\"\{0,1\}$" "$d/dkms.conf" && rm -rf "$d"
done

rm -rf /usr/lib/vordr
rm -f /usr/bin/vordr /lib/systemd/system/vordr.service \
  /usr/lib/modules-load.d/vordr.conf /etc/modprobe.d/vordr.conf
((keep_rules)) || rm -rf /etc/vordr
if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
  systemctl daemon-reload
fi

# What is left, if anything, is an error.
left=()
for p in /usr/lib/vordr /usr/bin/vordr /lib/systemd/system/vordr.service \
  /usr/lib/modules-load.d/vordr.conf /etc/modprobe.d/vordr.conf /var/lib/dkms/$NAME \
  /usr/src/$NAME-* /lib/modules/*/updates/dkms/$NAME.ko* /etc/systemd/system/*.wants/vordr.service; do
  [[ -e $p || -L $p ]] && left+=("$p")
done
((keep_rules)) || { [[ -e /etc/vordr ]] && left+=(/etc/vordr); }
if command -v dkms >/dev/null && [[ -n $(dkms status -m "$NAME" 2>/dev/null) ]]; then
  left+=("dkms status: $(dkms status -m "$NAME" | tr '\n' ' ')")
fi
[[ -d /sys/module/$NAME ]] && left+=("the loaded module")
((${#left[@]} == 0)) || die "left behind: ${left[*]}"
((keep_rules)) && say "kept /etc/vordr (the rules)"
say "vordr removed; nothing left behind"
