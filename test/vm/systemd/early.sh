#!/bin/bash
# vordr-test-early.service: the first connection the blocked application
# makes after a cold boot, taken as soon as the module is loaded and before
# vordr.service starts. A loopback server (python3, which no rule names)
# listens; the blocked application (/opt/vordr-test/blocked/python3) connects
# once. The result goes to /run/vordr-test/early.json for service.test.mjs;
# this unit itself always succeeds (the test judges).
set -u
dir=/run/vordr-test
mkdir -p "$dir"
up() { cut -d' ' -f1 /proc/uptime; }
t_start=$(up)
# modules-load.d loads vordr (systemd-modules-load ran before this unit); a
# short wait covers nothing but its last steps.
for _ in $(seq 50); do [[ -d /sys/module/vordr ]] && break; sleep 0.1; done
module=no; [[ -d /sys/module/vordr ]] && module=yes
t_module=$(up)
service=$(systemctl is-active vordr.service)

port_file=$dir/early.port
rm -f "$port_file"
/usr/bin/python3 -S -c '
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
s.settimeout(30)
try:
    while True:
        c, _ = s.accept(); c.sendall(b"hi\n"); c.close()
except OSError:
    pass
' "$port_file" &
server=$!
for _ in $(seq 300); do [[ -s $port_file ]] && break; sleep 0.1; done
port=$(cat "$port_file" 2>/dev/null || echo 0)
t_probe=$(up)
result=$(/opt/vordr-test/blocked/python3 -S -c '
import errno, socket, sys
s = socket.socket(); s.settimeout(3)
try:
    s.connect(("127.0.0.1", int(sys.argv[1]))); s.recv(10); print("ok")
except socket.timeout:
    print("TIMEOUT")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e)))
' "$port" 2>&1 | tail -n1)
kill "$server" 2>/dev/null
printf '{"module_loaded":"%s","service_at_probe":"%s","port":%s,"blocked":"%s","t_start":%s,"t_module":%s,"t_probe":%s}\n' \
  "$module" "$service" "$port" "$result" "$t_start" "$t_module" "$t_probe" >"$dir/early.json"
echo "vordr-test-early: $(cat "$dir/early.json")"
