#!/bin/bash
# Runs as root inside the benchmark VM (bench/run.sh boots it with an init
# made from test/vm/init that hands over to this script instead of
# test/vm/guest.sh; PID 1 reboots the VM when this returns).
#
# R rounds; each round runs every configuration once, in an order rotated by
# one per round: none (no module), v0 / v100 / v10000 (vordr.ko with that many
# rules for other executables, plus one allow rule for vbench when > 0), and
# osnitch (Debian's opensnitchd, default configuration). Each configuration
# runs the TCP connection storm and then the UDP flood. One result line per
# workload goes to /mnt/out/results.txt; evidence that each firewall really
# saw the traffic to /mnt/out/evidence.txt. The host makes the table.
set -u
out=/mnt/out
# shellcheck disable=SC1091
source "$out/vordr.env"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 LC_ALL=C.UTF-8
cli="$VORDR_REPO/daemon/dist/cli.js"
vbench=$BENCH_VBENCH
results=$out/results.txt
evidence=$out/evidence.txt
: >"$results"; : >"$evidence"
errors=0

say() { echo "bench-guest: $*"; }
bad() { say "ERROR: $*"; echo "error: $*" >>"$evidence"; errors=$((errors + 1)); }
say "userspace up at $(cut -d' ' -f1 /proc/uptime)s (kernel $(uname -r))"
hostname vordr-bench
ip link set lo up
cd "$VORDR_REPO" || exit 1

read -r -a configs <<<"$BENCH_CONFIGS"
[[ -n ${BENCH_PROFILE:-} ]] && grep -v '\[' /proc/kallsyms >"$out/kallsyms.txt"
# What vordr.ko needs and insmod does not load (nf_socket_ipv4/6): loaded
# once, for every configuration alike.
for dep in $(modinfo -F depends "$VORDR_KO" 2>/dev/null | tr ',' ' '); do
  modprobe "$dep" || bad "modprobe $dep failed"
done
vordr() { node "$cli" "$@"; }
# The last number vordr prints for `get FLAG`.
vordr_get() { echo "get $1" | vordr | grep -o '[0-9]\+' | tail -n1; }
# counter FILE PREFIX NAME: a counter of /proc/net/snmp or /proc/net/netstat
# (a line of names, then a line of values).
counter() {
  awk -v p="$2" -v f="$3" '$1 == p { if (!n++) { for (i = 2; i <= NF; i++) if ($i == f) k = i } else print $k }' "$1"
}
ruleset_empty() { [[ -z $(nft list ruleset 2>/dev/null) ]]; }

osn_pid=""
qpackets0=0

# Whether opensnitchd's NFQUEUE rule is in and its queue has a listener
# (/proc files have no size: read it).
osn_ready() {
  iptables -t mangle -S OUTPUT 2>/dev/null | grep -q NFQUEUE &&
    [[ -n $(cat /proc/net/netfilter/nfnetlink_queue 2>/dev/null) ]]
}

# setup CONFIG ROUND: make CONFIG the live one; false if that failed.
setup() {
  local c=$1 r=$2 n
  ruleset_empty || { bad "nftables ruleset not empty before $c"; nft flush ruleset; }
  grep -q "^$VORDR_MODULE " /proc/modules && { bad "$VORDR_MODULE still loaded before $c"; rmmod "$VORDR_MODULE"; }
  case $c in
    none) return 0 ;;
    v[0-9]* | vq[0-9]*)
      n=${c#v}
      n=${n#q}
      n=${n%nw}
      # vNnw: the module without its TCP writer watch (kmod/watch.c), to price it.
      insmod "$VORDR_KO" $([[ $c == *nw ]] && echo watch_writers=0) || { bad "insmod for $c failed"; return 1; }
      # Where the module's code is, for an instruction profile (bench/profile.py).
      [[ -n ${BENCH_PROFILE:-} ]] && grep -F "[$VORDR_MODULE]" /proc/kallsyms >"$out/kallsyms-$c-$r.txt"
      if ((n > 0)); then
        local t0=$EPOCHREALTIME file=$out/rules-$n.vordr
        # vqN: N qualified rules for vbench itself (bench/run.sh).
        [[ $c == vq* ]] && file=$out/rules-$c.vordr
        vordr -f "$file" >"$out/load.log" 2>&1 || { bad "loading $file failed: $(tail -n3 "$out/load.log")"; return 1; }
        local have
        have=$(echo query | vordr | grep -cE '^(allow|block) ')
        ((have == n + 1)) || { bad "$c: the module holds $have rules, want $((n + 1))"; return 1; }
        say "$c: $have rules loaded in $(bc <<<"$EPOCHREALTIME - $t0" | cut -c1-5)s"
      fi
      qpackets0=$(vordr_get qpackets)
      ;;
    osnitch)
      mkdir -p /etc/opensnitchd/rules
      # Until osn_ready.  opensnitchd 1.5.8 now and then never
      # gets there (seen once in CI, its log stopping after "Loading
      # rules"): it is started again, twice at most, and each restart is
      # recorded in the evidence file.
      local try start
      for ((try = 1; ; try++)); do
        # As its systemd unit starts it (ExecStart of opensnitch.service).
        /usr/bin/opensnitchd -rules-path /etc/opensnitchd/rules >>"$out/opensnitchd.out" 2>&1 &
        osn_pid=$!
        start=$SECONDS
        until osn_ready; do
          kill -0 "$osn_pid" 2>/dev/null || break
          ((SECONDS - start < 60)) || break
          sleep 0.2
        done
        osn_ready && break
        local why="set up no NFQUEUE rule in 60 s"
        kill -0 "$osn_pid" 2>/dev/null || why="exited at start"
        kill -9 "$osn_pid" 2>/dev/null
        wait "$osn_pid" 2>/dev/null
        osn_pid=""
        nft flush ruleset
        echo "round=$r config=osnitch restart: opensnitchd $why (try $try)" >>"$evidence"
        say "opensnitchd $why (try $try): $(tail -n2 "$out/opensnitchd.out" | tr '\n' ' ')"
        ((try < 3)) || { bad "opensnitchd $why, three times"; return 1; }
      done
      sleep 2   # let it finish starting (rules, monitors) before measuring
      say "opensnitchd up (pid $osn_pid) after $((SECONDS - start)) s: $(iptables -t mangle -S OUTPUT | grep NFQUEUE)"
      ;;
  esac
}

# teardown CONFIG ROUND: record what the firewall saw, then remove it.
teardown() {
  local c=$1 r=$2 n
  case $c in
    v[0-9]* | vq[0-9]*)
      n=${c#v}
      n=${n#q}
      n=${n%nw}
      local qp seen
      qp=$(vordr_get qpackets)
      seen=$((qp - qpackets0))
      echo "round=$r config=$c hook_packets=$seen" >>"$evidence"
      ((seen >= 2 * BENCH_CONNS)) || bad "$c: the hook saw only $seen packets"
      if ((n > 0)); then
        local line
        # The unqualified allow rule (a qualified one's line goes on with its qualifiers).
        line=$(echo "query allow" | vordr | grep -F " $vbench  packets=")
        echo "round=$r config=$c rule: $line" >>"$evidence"
        [[ $line =~ packets=([0-9]+) ]] && ((BASH_REMATCH[1] >= BENCH_CONNS)) ||
          bad "$c: the allow rule for vbench did not count the traffic: $line"
      fi
      rmmod "$VORDR_MODULE" || { bad "rmmod after $c failed"; return 1; }
      ;;
    osnitch)
      local q
      # queue_number peer_portid queue_total copy_mode copy_range
      # queue_dropped user_dropped id_sequence 1
      q=$(cat /proc/net/netfilter/nfnetlink_queue)
      echo "round=$r config=$c nfnetlink_queue: $q" >>"$evidence"
      iptables -t mangle -L OUTPUT -v -n -x | sed "s/^/round=$r config=$c iptables: /" >>"$evidence"
      local queued
      queued=$(awk '$1 == 0 { print $8 }' <<<"$q")
      # One SYN per connection made, at least.
      local made
      made=$(grep "round=$r config=osnitch workload=storm" "$results" | grep -o ' made=[0-9]*' | cut -d= -f2)
      ((${queued:-0} >= ${made:-1})) || bad "osnitch: only ${queued:-0} packets went through its queue for ${made:-?} connections"
      if [[ -n $osn_pid ]]; then
        kill "$osn_pid"
        local i
        for ((i = 0; i < 300; i++)); do kill -0 "$osn_pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$osn_pid" 2>/dev/null && { bad "opensnitchd ignored SIGTERM"; kill -9 "$osn_pid"; }
        wait "$osn_pid" 2>/dev/null
        osn_pid=""
      fi
      # It leaves its (empty) tables behind: their hooks would tax the
      # configurations that follow.
      nft flush ruleset
      ;;
  esac
}

port=20000
for ((r = 1; r <= BENCH_ROUNDS; r++)); do
  for ((j = 0; j < ${#configs[@]}; j++)); do
    c=${configs[(j + r - 1) % ${#configs[@]}]}
    say "round $r/$BENCH_ROUNDS: $c"
    # OpenSnitch queues every new connection (and every datagram of a
    # one-way flow) to its daemon: its runs are cut after BENCH_OSNITCH_SECS.
    secs=0
    [[ $c == osnitch ]] && secs=$BENCH_OSNITCH_SECS
    if setup "$c" "$r"; then
      sync; sleep 1
      port=$((port + 1))
      # SYNs sent again: a firewall that drops a SYN costs a second.
      syn0=$(counter /proc/net/netstat TcpExt: TCPSynRetrans)
      line=$("$vbench" storm "$BENCH_CONNS" "$BENCH_PAR" "$port" "$secs") || bad "$c: storm failed: $line"
      line+=" synretrans=$(($(counter /proc/net/netstat TcpExt: TCPSynRetrans) - syn0))"
      say "  $line"
      [[ -n $line ]] && echo "round=$r config=$c $line" >>"$results"
      port=$((port + 1))
      line=$("$vbench" udp "$BENCH_DGRAMS" "$BENCH_SIZE" "$port" "$secs") || bad "$c: udp flood failed: $line"
      say "  $line"
      [[ -n $line ]] && echo "round=$r config=$c $line" >>"$results"
    fi
    teardown "$c" "$r"
  done
done

[[ -f /var/log/opensnitchd.log ]] && cp /var/log/opensnitchd.log "$out/opensnitchd.log"
cp /etc/opensnitchd/default-config.json "$out/opensnitchd-config.json"
dmesg >"$out/dmesg.txt"
echo "errors=$errors" >"$out/status.tmp"
mv "$out/status.tmp" "$out/status"
sync
say "done: errors=$errors"
