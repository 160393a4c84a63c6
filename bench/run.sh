#!/usr/bin/env bash
# The benchmark of issue 3, item 10: a loopback TCP connection storm and a UDP
# flood in QEMU on Debian's stock kernel, with no firewall, with vordr.ko
# holding 0, 100 and 10,000 rules, and with Debian's OpenSnitch daemon, all
# interleaved in one boot. Prints each configuration's median throughput as a
# ratio to the no-firewall run and writes the table to bench/out/results.md.
#
#   bash bench/run.sh            # npm run bench: full form
#   bash bench/run.sh --short    # short form for CI (a few minutes under TCG)
#
# Exit status: non-zero on a broken run (the VM or a workload failed, a
# firewall did not see the traffic, a dirty kernel log); the full form also
# fails when a target is missed, the short form only reports it.
#
#   BENCH_CLOCK=icount bash bench/run.sh
#                                # the same, timed in instructions (see README)
#
# Environment: BENCH_CLOCK (wall or icount), BENCH_ICOUNT_SHIFT (2),
# BENCH_CONNS, BENCH_PAR, BENCH_DGRAMS, BENCH_SIZE, BENCH_ROUNDS,
# BENCH_OSNITCH_SECS, BENCH_CONFIGS override the form's values; VORDR_KO_stock / VORDR_KO, VORDR_QUIET,
# VORDR_VM_MEM and VORDR_APPEND work as in test/vm/run.sh.
set -uo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$BENCH_DIR/../test/vm/lib.sh"
# lib.sh's helpers, with our own output directory and init.
OUT=$BENCH_DIR/out/vm
VM_FLAVOR=bench

form=full
case "${1:-}" in
  "") ;;
  --short) form=short ;;
  *) echo "usage: $0 [--short]" >&2; exit 2 ;;
esac
if [[ $form == full ]]; then
  : "${BENCH_CONNS:=20000}" "${BENCH_DGRAMS:=200000}" "${BENCH_ROUNDS:=5}" "${BENCH_OSNITCH_SECS:=30}"
else
  : "${BENCH_CONNS:=3000}" "${BENCH_DGRAMS:=50000}" "${BENCH_ROUNDS:=2}" "${BENCH_OSNITCH_SECS:=10}"
fi
: "${BENCH_PAR:=2}" "${BENCH_SIZE:=64}" "${BENCH_CONFIGS:=none v0 v100 v10000 vq1000 osnitch}"
: "${BENCH_CLOCK:=wall}" "${BENCH_ICOUNT_SHIFT:=2}"
case $BENCH_CLOCK in
  wall) clock="2 vCPUs, wall clock" ;;
  # The guest's clock counts instructions (2^shift ns each) and jumps over
  # idle time: the host's load no longer reaches the figures, and every
  # instruction the hook costs does.  Cache and memory effects do not show.
  icount) clock="1 vCPU, instruction clock (-icount shift=$BENCH_ICOUNT_SHIFT,sleep=off: 2^$BENCH_ICOUNT_SHIFT ns per guest instruction)" ;;
  *) echo "BENCH_CLOCK: wall or icount" >&2; exit 2 ;;
esac

fail() { vm_log "$*"; exit 1; }

command -v qemu-system-x86_64 >/dev/null || fail "qemu-system-x86_64 missing"
[[ -x /usr/bin/opensnitchd ]] || fail "opensnitchd missing (apt-get install opensnitch iptables nftables)"
command -v iptables >/dev/null && command -v nft >/dev/null || fail "iptables/nft missing (apt-get install iptables nftables)"
[[ -f $REPO/daemon/dist/cli.js ]] || fail "daemon/dist/cli.js missing (npm ci)"

mkdir -p "$OUT"
gcc -O2 -Wall -Wextra -Werror -o "$BENCH_DIR/out/vbench" "$BENCH_DIR/vbench.c" || fail "building vbench failed"

# The init of test/vm, handing over to bench/guest.sh instead of test/vm/guest.sh.
VM_DIR=$OUT/init
mkdir -p "$VM_DIR"
sed 's#test/vm/guest\.sh#bench/guest.sh#g' "$REPO/test/vm/init" >"$VM_DIR/init"
grep -q 'bench/guest\.sh' "$VM_DIR/init" && ! grep -q 'test/vm/guest' "$VM_DIR/init" \
  || fail "test/vm/init no longer names test/vm/guest.sh: update bench/run.sh"

resolve_kernel stock || fail "no stock kernel"
build_module stock || fail "module build failed"
build_initramfs stock || fail "initramfs failed"
prepare_share stock BENCH_CONNS="$BENCH_CONNS" BENCH_PAR="$BENCH_PAR" BENCH_DGRAMS="$BENCH_DGRAMS" \
  BENCH_SIZE="$BENCH_SIZE" BENCH_ROUNDS="$BENCH_ROUNDS" BENCH_CONFIGS="$BENCH_CONFIGS" \
  BENCH_OSNITCH_SECS="$BENCH_OSNITCH_SECS" BENCH_VBENCH="$BENCH_DIR/out/vbench" \
  BENCH_PROFILE="${BENCH_PROFILE:-}"

# Rules for executables that never run, spread like a real table: exact
# paths and directories, tcp, udp and any, allow and block; plus the allow
# rule for vbench (client and server) that every packet of the run matches.
for c in $BENCH_CONFIGS; do
  [[ $c =~ ^v([0-9]+)(nw)?$ ]] || continue
  n=${BASH_REMATCH[1]}
  ((n > 0)) || continue
  awk -v n="$n" -v vb="$BENCH_DIR/out/vbench" 'BEGIN {
    split("tcp udp any", prot, " "); split("allow block", verb, " ")
    for (i = 0; i < n; i++) {
      if (i % 10 == 9) path = sprintf("/opt/bench%03d/app%05d/", i % 97, i)
      else             path = sprintf("/opt/bench%03d/bin/app%05d", i % 97, i)
      printf "%s %s %s\n", verb[i % 2 + 1], prot[i % 3 + 1], path
    }
    printf "allow any %s\n", vb
  }' >"$SHARE/rules-$n.vordr"
done
# vqN: vbench itself gets N qualified rules that none of its packets match
# (exact IPv4 addresses, IPv4 prefixes /16 to /31 with ports, IPv6
# prefixes, 48 port-only rules for ports 1-95: one key holds at most 64
# rules), so each of its
# packets takes the qualified lookup's every probe before its unqualified
# allow rule: the bounded cost of issue 14, item 2.
for c in $BENCH_CONFIGS; do
  [[ $c =~ ^vq([0-9]+)$ ]] || continue
  n=${BASH_REMATCH[1]}
  awk -v n="$n" -v vb="$BENCH_DIR/out/vbench" 'BEGIN {
    split("tcp udp any", prot, " ")
    for (i = 0; i < n; i++) {
      k = i % 4; a = int(i / 4)
      if (k == 0) printf "block any %s to 10.%d.%d.1\n", vb, int(a / 256) % 256, a % 256
      else if (k == 1) {
        len = 8 + a % 24
        printf "block %s %s to 11.%d.0.0/%d port %d\n", prot[a % 3 + 1], vb, a % 256, (len < 16 ? 16 : len), 1000 + a
      } else if (k == 2) printf "allow udp %s to fd00:%x::/48\n", vb, a
      else if (a < 48) printf "block any %s port %d\n", vb, 1 + 2 * a
      else printf "block any %s to 12.%d.%d.1\n", vb, int(a / 256) % 256, a % 256
    }
    printf "allow any %s\n", vb
  }' >"$SHARE/rules-$c.vordr"
done

qemu_cmd stock
if [[ $BENCH_CLOCK == icount ]]; then
  # One vCPU: QEMU 7.2 under -icount sleep=off hangs bringing up a second.
  for i in "${!QEMU_CMD[@]}"; do [[ ${QEMU_CMD[i]} == -smp ]] && QEMU_CMD[i + 1]=1; done
  QEMU_CMD+=(-icount "shift=$BENCH_ICOUNT_SHIFT,sleep=off")
fi
if [[ -n ${BENCH_PROFILE:-} ]]; then
  # An instruction profile of the guest kernel (bench/tbprof.c).
  gcc -O2 -Wall -shared -fPIC -o "$BENCH_DIR/out/tbprof.so" "$BENCH_DIR/tbprof.c" || fail "building tbprof failed"
  QEMU_CMD+=(-plugin "$BENCH_DIR/out/tbprof.so,out=$SHARE/tbprof.txt")
fi
tmo=${VORDR_TIMEOUT:-$([[ $form == full ]] && echo 5400 || echo 1200)}
log=$OUT/console.log
vm_log "$form form: ${BENCH_CONNS} connections (${BENCH_PAR} clients), ${BENCH_DGRAMS} datagrams of ${BENCH_SIZE} B, ${BENCH_ROUNDS} rounds of: ${BENCH_CONFIGS} (OpenSnitch cut after ${BENCH_OSNITCH_SECS} s)"
vm_log "booting (timeout ${tmo}s): ${QEMU_CMD[*]} -serial stdio"
t0=$(date +%s)
if [[ ${VORDR_QUIET:-0} == 1 ]]; then
  timeout -k 10 "$tmo" "${QEMU_CMD[@]}" -serial stdio </dev/null 2>&1 | sed -u 's/\r$//' >"$log"
else
  timeout -k 10 "$tmo" "${QEMU_CMD[@]}" -serial stdio </dev/null 2>&1 | sed -u 's/\r$//' | tee "$log"
fi
qrc=${PIPESTATUS[0]}
vm_log "VM ran $(($(date +%s) - t0)) s, qemu exit $qrc"

python3 "$BENCH_DIR/table.py" --form "$form" --share "$SHARE" --qemu-rc "$qrc" \
  --conns "$BENCH_CONNS" --par "$BENCH_PAR" --dgrams "$BENCH_DGRAMS" --size "$BENCH_SIZE" \
  --rounds "$BENCH_ROUNDS" --configs "$BENCH_CONFIGS" --osnitch-secs "$BENCH_OSNITCH_SECS" \
  --kernel "$KERNEL_VERSION" --commit "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  --clock "$clock" --out "$BENCH_DIR/out/results.md" --console "$log"
