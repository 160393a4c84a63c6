# Sourced by ./try and ./check: what each needs from the machine, checked,
# and installed only when missing and only after asking.
#
#   setup_packages NAME PKG...   install the missing PKGs (Debian packages)
#   setup_node                   Node.js >= 20 and npm, or the command that installs them
#   setup_npm                    npm ci when node_modules or the build is missing or older
#
# --yes (SETUP_YES=1) answers yes to the question; without a terminal and
# without --yes nothing is installed and the command to run is printed.

SETUP_YES=${SETUP_YES:-0}

# ./try: the VM and the kernel it boots; the module's build for that kernel;
# the initramfs; the addon's libraries; tmux and what `demo` runs in the VM.
SETUP_TRY_PACKAGES=(qemu-system-x86 linux-image-amd64 linux-headers-amd64
  build-essential kmod cpio busybox-static
  libnl-3-dev libnl-genl-3-dev libsystemd-dev pkg-config
  python3 tmux curl socat iproute2 util-linux iputils-ping)
# ./check adds: the debug kernel's source and build tools; what the VM tests
# run (nc); the Debian packages' build (dpkg-buildpackage, debhelper,
# dh_dkms, dch for the upgrade test, help2man for vordr(1)), lintian and
# DKMS; the benchmark's peers.
SETUP_TEST_PACKAGES=(linux-source-6.1 bc bison flex libelf-dev libssl-dev dwarves xz-utils sparse
  netcat-openbsd
  dpkg-dev debhelper dh-dkms devscripts help2man lintian dkms openssl
  opensnitch iptables nftables)
setup_say() { printf '\033[1m%s:\033[0m %s\n' "${SETUP_NAME:-setup}" "$*"; }
setup_die() { setup_say "$*" >&2; exit 1; }

# The machine. Debian 12: the VM boots Debian's kernel (linux-image-amd64).
# Ubuntu 24.04: Ubuntu's (linux-image-virtual: the same image as a desktop's
# linux-image-generic without its firmware), whose modules are zstd files;
# ./check runs there what does not need Debian's packages (see ./check).
SETUP_OS=""
setup_os() {
  local id="" ver=""
  if [[ -r /etc/os-release ]]; then
    id=$(. /etc/os-release && echo "${ID:-}") ver=$(. /etc/os-release && echo "${VERSION_ID:-}")
  fi
  case "$id:$ver" in
    debian:12) SETUP_OS=debian ;;
    ubuntu:24.04)
      SETUP_OS=ubuntu
      SETUP_TRY_PACKAGES=("${SETUP_TRY_PACKAGES[@]/#linux-image-amd64/linux-image-virtual}")
      SETUP_TRY_PACKAGES=("${SETUP_TRY_PACKAGES[@]/#linux-headers-amd64/linux-headers-virtual}" zstd)
      ;;
    *) setup_die "this machine is '${id:-unknown} ${ver}'; these commands set up Debian 12 (bookworm) or Ubuntu 24.04, whose own kernels the VM boots. Elsewhere use one of those (a VM will do); docs/INSTALL.md lists what the pieces need." ;;
  esac
  command -v dpkg-query >/dev/null && command -v apt-get >/dev/null || setup_die "no dpkg/apt-get on this machine"
}

# ask QUESTION: true when the user (or --yes) says yes.
setup_ask() {
  ((SETUP_YES)) && return 0
  if [[ ! -t 0 ]]; then
    setup_say "no terminal to ask on: run it yourself, or again with --yes"
    return 1
  fi
  local a
  read -r -p "$1 [y/N] " a
  [[ $a == y || $a == Y || $a == yes ]]
}

setup_root() {
  if [[ $(id -u) == 0 ]]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else setup_die "installing needs root and there is no sudo: as root, run: $*"
  fi
}

setup_packages() {
  local what=$1 p missing=()
  shift
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    setup_say "the packages $what needs are installed (${#} checked)"
    return 0
  fi
  local cmd="apt-get install --no-install-recommends ${missing[*]}"
  setup_say "$what needs ${#missing[@]} package(s) not on this machine: ${missing[*]}"
  [[ $(id -u) == 0 ]] || setup_say "(installing them uses sudo)"
  setup_ask "install them now (apt-get update, then $cmd)?" ||
    setup_die "not installed; to do it yourself: sudo apt-get update && sudo $cmd"
  setup_root apt-get update -q || setup_die "apt-get update failed"
  # OpenSnitch (the benchmark's peer) is a firewall: its package would enable
  # and start it on this machine. policy-rc.d (invoke-rc.d's and
  # deb-systemd-invoke's veto) keeps it stopped; it is then disabled.
  local veto=""
  if [[ " ${missing[*]} " == *" opensnitch "* && ! -e /usr/sbin/policy-rc.d ]]; then
    veto=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\n# ./check: no service starts while it installs packages\nexit 101\n' |
      setup_root tee "$veto" >/dev/null && setup_root chmod 0755 "$veto"
  fi
  setup_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  local rc=$?
  [[ -n $veto ]] && setup_root rm -f "$veto"
  ((rc == 0)) || setup_die "apt-get install failed (exit $rc)"
  if [[ " ${missing[*]} " == *" opensnitch "* ]] && command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
    setup_root systemctl disable --now opensnitch.service >/dev/null 2>&1 || true
    setup_say "opensnitch is installed for the benchmark and left stopped and disabled"
  fi
}

# The VM's kernel image must be readable by whoever runs it. Ubuntu's
# /boot/vmlinuz-* is root's only (0600): a copy readable by this user goes
# to test/vm/out/stock/, after asking (the image is public: it is the
# package's file). Debian's is world-readable; nothing is done there.
setup_kernel_image() {
  local ver copy
  ver=$(source test/vm/lib.sh && stock_kernel_version) || setup_die "no kernel for the VM"
  # lib.sh decides which image the VM reads; done when it finds one.
  (source test/vm/lib.sh && stock_kernel_image "$ver" >/dev/null 2>&1) && return 0
  copy=test/vm/out/stock/vmlinuz-$ver
  setup_say "/boot/vmlinuz-$ver (the kernel the VM boots) is readable by root only"
  setup_ask "copy it for the VM to $copy (sudo install -m 0644)?" ||
    setup_die "not copied; to do it yourself: sudo install -m 0644 -o $(id -un) /boot/vmlinuz-$ver $copy"
  mkdir -p "${copy%/*}"
  setup_root install -m 0644 -o "$(id -un)" "/boot/vmlinuz-$ver" "$copy" || setup_die "copying the kernel image failed"
}

# Node.js 20 or newer (Debian 12 ships 18) with npm.
setup_node() {
  local v major
  if command -v node >/dev/null && v=$(node -v 2>/dev/null) && [[ $v =~ ^v([0-9]+)\. ]]; then
    major=${BASH_REMATCH[1]}
    if ((major >= 20)) && command -v npm >/dev/null; then
      setup_say "Node.js $v and npm $(npm -v 2>/dev/null) found"
      return 0
    fi
    ((major >= 20)) || setup_say "Node.js $v is too old: vordr needs 20 or newer"
  else
    setup_say "Node.js is not installed: vordr needs 20 or newer"
  fi
  command -v npm >/dev/null || setup_say "npm is missing"
  setup_die "install Node.js 20 (with npm), e.g. from NodeSource: curl -fsSL https://deb.nodesource.com/setup_20.x | sudo bash - && sudo apt-get install -y nodejs   (then run this again)"
}

# npm ci (the addon's node-gyp build, the daemon's tsc) unless what it makes
# is there and newer than package-lock.json and every source it builds from.
setup_npm() {
  local stamp=node_modules/.package-lock.json newest
  if [[ -f $stamp && -f daemon/dist/cli.js && -f addon/build/Release/vordr.node ]]; then
    newest=$(find package-lock.json defs.x addon/src daemon/src -newer daemon/dist/cli.js -print -quit 2>/dev/null)
    if [[ -z $newest && ! package-lock.json -nt $stamp ]]; then
      setup_say "the addon and the daemon are built (npm ci not needed)"
      return 0
    fi
  fi
  setup_say "npm ci: installs the npm packages, builds the addon (node-gyp) and the daemon (tsc)"
  npm ci || setup_die "npm ci failed"
}

setup_args() {
  local a
  SETUP_REST=()
  for a in "$@"; do
    case $a in
      --yes|-y) SETUP_YES=1 ;;
      *) SETUP_REST+=("$a") ;;
    esac
  done
}
