#!/usr/bin/env bash
# Build vordr's Debian packages from this tree with Debian's toolchain:
#
#   packaging/deb.sh [--out DIR] [--version VERSION]
#
# Copies the files git knows (tracked and untracked, not ignored) to a
# scratch directory, runs `dpkg-buildpackage -b -us -uc` there (debian/rules:
# npm ci builds the addon and the daemon, then the production
# node_modules), and leaves vordr-dkms_VERSION_all.deb and
# vordr_VERSION_ARCH.deb (and the .buildinfo, .changes) in DIR (out/deb).
# The tree itself (its node_modules, addon/build, daemon/dist) is not touched.
#
# The version is debian/changelog's; package.json must agree. --version
# builds the copy as VERSION instead (a new changelog entry and package.json),
# as a release would be (test/vm/deb.sh's upgrade uses it).
# Needs: dpkg-dev, debhelper, dh-dkms, Node.js >= 20 with npm, the addon's
# build deps (debian/control's Build-Depends; dpkg-buildpackage checks them).
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$SRC/out/deb
version=
die() { echo "deb.sh: error: $*" >&2; exit 1; }
while (($#)); do
  case $1 in
    --out) (($# >= 2)) || die "--out needs a directory"; out=$2; shift 2 ;;
    --version) (($# >= 2)) || die "--version needs a version"; version=$2; shift 2 ;;
    -h|--help) sed -n '2,4p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1'" ;;
  esac
done
command -v dpkg-buildpackage >/dev/null || die "dpkg-buildpackage is missing (apt-get install dpkg-dev debhelper dh-dkms)"
command -v npm >/dev/null || die "npm is missing (it comes with Node.js >= 20)"

work=$(mktemp -d "${TMPDIR:-/tmp}/vordr-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
tree=$work/vordr
mkdir -p "$tree"
(cd "$SRC" && git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [[ -e $f || -L $f ]] && printf '%s\0' "$f"   # skip files deleted but not committed
done | cpio --null -pdm --quiet "$tree")

if [[ -n $version ]]; then
  (cd "$tree" && DEBEMAIL=$(dpkg-parsechangelog -S Maintainer) \
    dch --newversion "$version" --distribution unstable --force-distribution \
      "Version $version (packaging/deb.sh --version)." >/dev/null 2>&1) \
    || die "cannot add a changelog entry for $version (dch, from devscripts)"
  node -e 'const f=process.argv[1],p=require(f);p.version=process.argv[2];require("fs").writeFileSync(f,JSON.stringify(p,null,2)+"\n")' \
    "$tree/package.json" "$version"
  node -e 'const f=process.argv[1],p=require(f);p.version=process.argv[2];p.packages[""].version=process.argv[2];require("fs").writeFileSync(f,JSON.stringify(p,null,2)+"\n")' \
    "$tree/package-lock.json" "$version"
fi

echo "deb.sh: dpkg-buildpackage -b -us -uc in $tree"
t0=$(date +%s)
(cd "$tree" && dpkg-buildpackage -b -us -uc) >"$work/build.log" 2>&1 || {
  tail -n 60 "$work/build.log" >&2; die "dpkg-buildpackage failed (the log's end is above)"; }
t1=$(date +%s)
mkdir -p "$out"
rm -f "$out"/vordr*.deb "$out"/vordr_*.buildinfo "$out"/vordr_*.changes
mv "$work"/*.deb "$work"/*.buildinfo "$work"/*.changes "$out/"
cp "$work/build.log" "$out/build.log"
echo "deb.sh: built in $((t1 - t0)) s:"
(cd "$out" && ls -l ./*.deb | awk '{print "  " $NF " (" $5 " bytes)"}')
