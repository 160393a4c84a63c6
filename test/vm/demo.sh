#!/bin/bash
# `demo` in the try VM (./try): labelled traffic from real programs on
# loopback, so that the console beside it shows events, a rule taking effect
# and a prompt in the first minute. Each line names the program's path, the
# one a rule names:
#
#   demo            every program once
#   demo NAME...    only these: curl python ping udp unknown
#
# A local HTTP server (python3, 127.0.0.1:8080) and a UDP echo (socat,
# 127.0.0.1:9999) start on the first run. "unknown" is a copy of curl at
# /opt/demo/unknown-app: no rule names it, so with `set unkrule pending` the
# console asks about it (and then about the server it reaches, python3,
# for the inbound connection); it waits 25 s, so that its retries go
# through once the prompts are answered.
set -u
port=8080 uport=9999
unknown=/opt/demo/unknown-app

say() { printf '\033[1mdemo:\033[0m %s\n' "$*"; }

# result LABEL PATH COMMAND...: run it (30 s at most), say what happened.
result() {
  local label=$1 path=$2 rc
  shift 2
  timeout 30 "$@" >/dev/null 2>&1
  rc=$?
  # curl: 28 timed out, 7 refused; timeout(1): 124.
  case $rc in
    0) say "$label ($path): passed" ;;
    28|124) say "$label ($path): blocked (dropped: no answer)" ;;
    7) say "$label ($path): blocked (connection refused)" ;;
    *) say "$label ($path): failed (exit $rc)" ;;
  esac
}

# Whether a server listens is asked of the kernel (ss), never by
# connecting: a connection from this script would be bash's own traffic,
# which a rule or a prompt (unkrule pending) would then be about.
listening() { [[ -n $(ss -Hln "$1" "sport = :$2" 2>/dev/null) ]]; }
start_servers() {
  if ! listening -t $port; then
    mkdir -p /tmp/demo-www && echo "hello from the demo server" >/tmp/demo-www/index.html
    (cd /tmp/demo-www && setsid python3 -m http.server --bind 127.0.0.1 $port >/tmp/demo-http.log 2>&1 &)
    for _ in $(seq 50); do listening -t $port && break; sleep 0.2; done
    say "started an HTTP server (python3 -m http.server) on 127.0.0.1:$port"
  fi
  if ! listening -u $uport; then
    setsid socat "UDP4-RECVFROM:$uport,bind=127.0.0.1,fork" EXEC:cat >/dev/null 2>&1 &
    for _ in $(seq 50); do listening -u $uport && break; sleep 0.2; done
    say "started a UDP echo (socat) on 127.0.0.1:$uport"
  fi
  if [[ ! -x $unknown ]]; then
    mkdir -p "$(dirname "$unknown")" && cp /usr/bin/curl "$unknown"
  fi
}

one() {
  case $1 in
    curl) result "curl http://127.0.0.1:$port/" /usr/bin/curl curl -s -o /dev/null --max-time 6 "http://127.0.0.1:$port/" ;;
    python) result "python3 urllib http://127.0.0.1:$port/" "$(readlink -f /usr/bin/python3)" \
      python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/', timeout=6).read()" ;;
    ping) result "ping -c 1 127.0.0.1 (icmp)" "$(readlink -f /usr/bin/ping)" ping -c 1 -W 6 127.0.0.1 ;;
    udp) result "socat udp 127.0.0.1:$uport (echo)" /usr/bin/socat \
      sh -c "echo ping | socat -T 6 - UDP4:127.0.0.1:$uport | grep -q ping" ;;
    unknown) result "unknown-app http://127.0.0.1:$port/" "$unknown" \
      "$unknown" -s -o /dev/null --max-time 25 "http://127.0.0.1:$port/" ;;
    *) say "no such demo '$1' (curl python ping udp unknown)"; return 2 ;;
  esac
}

start_servers
if (($# == 0)); then set -- curl python ping udp unknown; fi
for d in "$@"; do one "$d"; done
say "next, in the console: block tcp /usr/bin/curl, then demo curl here; clear /usr/bin/curl"
say "or set unkrule pending in the console, then demo unknown here: the console asks"
