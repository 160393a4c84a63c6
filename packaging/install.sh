#!/usr/bin/env bash
# Install vordr from a built checkout (run `npm ci` first), as root:
#
#   sudo packaging/install.sh [--kernel VERSION]... [--no-start]
#
# - the kernel module through DKMS: kmod/, defs.x and dkms.conf (nothing else)
#   go to /usr/src/vordr-VERSION, then `dkms install` builds and installs it
#   for each --kernel (default: the running kernel). AUTOINSTALL in dkms.conf
#   rebuilds it for every kernel installed later.
# - the daemon: package.json, daemon/dist, the addon and the production
#   node_modules to /usr/lib/vordr; /usr/bin/vordr runs it with the node
#   found now (Node.js >= 20).
# - boot: /usr/lib/modules-load.d/vordr.conf loads the module early in boot;
#   /etc/modprobe.d/vordr.conf (module parameters, rewritten by the daemon
#   from the saved rules) makes it enforce the saved policy from that moment;
#   vordr.service runs `vordr --service`.
# - /etc/vordr (the rules) and /etc/modprobe.d/vordr.conf are never
#   overwritten: an upgrade (running this again from a newer checkout) keeps
#   the rules. An older vordr version is removed from DKMS first.
#
# Unless --no-start is given, or systemd is not running, or no --kernel is the
# running one: the module is (re)loaded with modprobe and the service enabled
# and (re)started. packaging/uninstall.sh undoes all of it.
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
NAME=vordr
LIBDIR=/usr/lib/vordr
BIN=/usr/bin/vordr
UNIT=/lib/systemd/system/vordr.service
MODLOAD=/usr/lib/modules-load.d/vordr.conf
MODPROBE=/etc/modprobe.d/vordr.conf
ETC=/etc/vordr

say() { echo "vordr-install: $*"; }
die() { echo "vordr-install: error: $*" >&2; exit 1; }
usage() { sed -n '2,4p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

kernels=()
start=1
while (($#)); do
  case $1 in
    -k|--kernel) (($# >= 2)) || die "$1 needs a kernel version"; kernels+=("$2"); shift 2 ;;
    --kernel=*) kernels+=("${1#*=}"); shift ;;
    --no-start) start=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done
((${#kernels[@]})) || kernels=("$(uname -r)")

# Everything is checked before anything is changed.
[[ $(id -u) == 0 ]] || die "run as root (sudo $0)"
command -v dkms >/dev/null || die "dkms is not installed (apt-get install dkms)"
VERSION=$(sed -n 's/^PACKAGE_VERSION="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$SRC/dkms.conf")
[[ -n $VERSION ]] || die "no PACKAGE_VERSION in $SRC/dkms.conf"
pkgver=$(node -p 'require(process.argv[1]).version' "$SRC/package.json" 2>/dev/null) \
  || die "cannot run node on $SRC/package.json (Node.js >= 20 is needed)"
[[ $pkgver == "$VERSION" ]] || die "dkms.conf says version $VERSION but package.json says $pkgver"
node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' \
  || die "Node.js $(node --version) is too old: vordr needs >= 20"
for f in daemon/dist/cli.js addon/index.js addon/build/Release/vordr.node; do
  [[ -f $SRC/$f ]] || die "$SRC/$f is missing: build the checkout first (npm ci)"
done
for k in "${kernels[@]}"; do
  [[ -e /lib/modules/$k/build ]] \
    || die "no headers for kernel $k (/lib/modules/$k/build): apt-get install linux-headers-$k"
done
mapfile -t prod < <(cd "$SRC" && npm ls --omit=dev --all --parseable 2>/dev/null | tail -n +2)
((${#prod[@]})) || die "cannot list the daemon's dependencies (npm ls --omit=dev in $SRC)"

# --- the module, through DKMS --------------------------------------------
# Any other vordr version goes first (upgrade); this version is re-added from
# these sources (reinstall).
while read -r old; do
  [[ -n $old ]] || continue
  say "dkms remove $NAME/$old --all"
  dkms remove "$NAME/$old" --all >/dev/null
done < <(dkms status -m "$NAME" 2>/dev/null | sed -n "s|^$NAME/\([^,:]*\)[,:].*|\1|p" | sort -u)
for d in /usr/src/"$NAME"-*; do
  [[ -f $d/dkms.conf ]] && grep -q "^PACKAGE_NAME=\"\{0,1\}$NAME\"\{0,1\}$" "$d/dkms.conf" && rm -rf "$d"
done

tree=/usr/src/$NAME-$VERSION
say "copying kmod/, defs.x, dkms.conf to $tree"
install -d -m 0755 "$tree/kmod"
install -m 0644 "$SRC/dkms.conf" "$SRC/defs.x" "$tree/"
for f in "$SRC"/kmod/Kbuild "$SRC"/kmod/Makefile "$SRC"/kmod/*.[ch]; do
  case $f in *.mod.c) continue ;; esac   # a build product, not a source
  install -m 0644 "$f" "$tree/kmod/"
done
say "dkms add $NAME/$VERSION"
dkms add "$NAME/$VERSION" >/dev/null
for k in "${kernels[@]}"; do
  say "dkms install $NAME/$VERSION -k $k"
  if ! dkms install "$NAME/$VERSION" -k "$k"; then
    log=/var/lib/dkms/$NAME/$VERSION/build/make.log
    [[ -f $log ]] && tail -n 40 "$log" >&2
    die "the module did not build for kernel $k"
  fi
done

# --- the daemon -------------------------------------------------------------
say "installing the daemon in $LIBDIR, $BIN"
rm -rf "$LIBDIR.new"
install -d -m 0755 "$LIBDIR.new/daemon" "$LIBDIR.new/addon/build/Release" "$LIBDIR.new/node_modules"
install -m 0644 "$SRC/package.json" "$LIBDIR.new/"
cp -r "$SRC/daemon/dist" "$LIBDIR.new/daemon/dist"
install -m 0644 "$SRC/addon/index.js" "$LIBDIR.new/addon/"
install -m 0755 "$SRC/addon/build/Release/vordr.node" "$LIBDIR.new/addon/build/Release/"
for p in "${prod[@]}"; do
  rel=${p#"$SRC"/node_modules/}
  [[ $rel != "$p" ]] || die "unexpected dependency path $p"
  install -d "$LIBDIR.new/node_modules/$(dirname "$rel")"
  cp -r "$p" "$LIBDIR.new/node_modules/$rel"
done
chmod 0755 "$LIBDIR.new/daemon/dist/cli.js"
chown -R root:root "$LIBDIR.new"
rm -rf "$LIBDIR"; mv "$LIBDIR.new" "$LIBDIR"
# The node checked above, by absolute path: the service's PATH may not hold it.
node=$(command -v node)
printf '#!/bin/sh\n# Installed by vordr packaging/install.sh\nexec %q %q "$@"\n' \
  "$node" "$LIBDIR/daemon/dist/cli.js" >"$BIN.new"
chmod 0755 "$BIN.new"; mv -f "$BIN.new" "$BIN"

# --- boot -------------------------------------------------------------------
install -D -m 0644 "$SRC/packaging/vordr.service" "$UNIT"
install -D -m 0644 "$SRC/packaging/modules-load.conf" "$MODLOAD"
if [[ -e $MODPROBE ]]; then
  say "keeping $MODPROBE (the saved policy)"
else
  install -D -m 0644 "$SRC/packaging/modprobe.conf" "$MODPROBE"
fi
install -d -m 0755 "$ETC"

# Enabled for the next boot whether or not systemd runs now (systemctl
# enable only makes the [Install] symlinks).
if command -v systemctl >/dev/null; then
  systemctl enable vordr.service 2>&1 | sed 's/^/vordr-install: /'
else
  say "no systemctl: vordr.service installed but not enabled"
fi

running=0
for k in "${kernels[@]}"; do [[ $k == "$(uname -r)" ]] && running=1; done
if ((start)) && ((running)) && [[ -d /run/systemd/system ]]; then
  systemctl daemon-reload
  systemctl stop vordr.service
  if [[ -d /sys/module/$NAME ]]; then
    say "reloading the module: the new one enforces the saved policy from load"
    modprobe -r "$NAME"
  fi
  modprobe "$NAME"
  systemctl start vordr.service
  say "vordr $VERSION installed and loaded; vordr.service started"
else
  say "vordr $VERSION installed, not started (--no-start, systemd not running, or not for the running kernel);"
  say "it loads at the next boot of that kernel, or now: modprobe vordr && systemctl start vordr.service"
fi
