# Packets of every kind a program can send, for test/vm/security.test.mjs.
# Run from a copy of python whose path the rules name:
#   prot.py recv            opens receivers (UDP-Lite, raw protocol 253 on
#                           IPv4 and IPv6, SCTP when the kernel has it),
#                           prints their ports as JSON, then on each line of
#                           stdin prints what each has received so far
#   prot.py send PORTS TAG  one packet of each to those receivers
#   prot.py odd             packets with no transport header to read:
#                           IPv6 non-first fragment, IPv6 "no next header",
#                           a truncated extension header, TCP shorter
#                           than its header (IPv4 and IPv6)
# send and odd print {name: "ok" | errno name}.
import errno, json, os, select, socket, struct, sys, threading

UDPLITE = 136
PROTO = 253          # RFC 3692 experimentation
SCTP = 132

def ename(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__

def sctp_ok():
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM, SCTP).close()
        return True
    except OSError:
        return False

def recv():
    seen = {}
    lock = threading.Lock()
    socks = {}
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, UDPLITE)
    u.bind(('127.0.0.1', 0))
    socks['udplite'] = u
    socks['raw4'] = socket.socket(socket.AF_INET, socket.SOCK_RAW, PROTO)
    socks['raw6'] = socket.socket(socket.AF_INET6, socket.SOCK_RAW, PROTO)
    ports = {'udplite': u.getsockname()[1]}
    if sctp_ok():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, SCTP)
        s.bind(('127.0.0.1', 0))
        s.listen(8)
        ports['sctp'] = s.getsockname()[1]
        def accept():
            while True:
                c, _ = s.accept()
                def serve(c=c):
                    while True:
                        d = c.recv(100)
                        if not d:
                            return
                        with lock:
                            seen.setdefault('sctp', []).append(d.decode(errors='replace'))
                threading.Thread(target=serve, daemon=True).start()
        threading.Thread(target=accept, daemon=True).start()
    def pump(name, s):
        while True:
            d = s.recv(2000)
            if name == 'raw4':
                d = d[(d[0] & 15) * 4:]
            with lock:
                seen.setdefault(name, []).append(d.decode(errors='replace'))
    for n, s in socks.items():
        threading.Thread(target=pump, args=(n, s), daemon=True).start()
    print(json.dumps(ports), flush=True)
    for _ in sys.stdin:
        with lock:
            print(json.dumps(seen), flush=True)

def send(ports, tag):
    res = {}
    def attempt(name, fn):
        try:
            fn()
            res[name] = 'ok'
        except OSError as e:
            res[name] = ename(e)
    def udplite():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, UDPLITE)
        s.sendto(('udplite-' + tag).encode(), ('127.0.0.1', ports['udplite']))
    def raw4():
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, PROTO)
        s.sendto(('raw4-' + tag).encode(), ('127.0.0.1', 0))
    def raw6():
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, PROTO)
        s.sendto(('raw6-' + tag).encode(), ('::1', 0))
    def sctp():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, SCTP)
        s.settimeout(2)
        s.connect(('127.0.0.1', ports['sctp']))
        s.send(('sctp-' + tag).encode())
        s.close()
    attempt('udplite', udplite)
    attempt('raw4', raw4)
    attempt('raw6', raw6)
    if 'sctp' in ports:
        attempt('sctp', sctp)
    print(json.dumps(res), flush=True)

def ip6(nexthdr, payload):
    src = socket.inet_pton(socket.AF_INET6, '::1')
    return struct.pack('!IHBB', 6 << 28, len(payload), nexthdr, 64) + src + src + payload

def odd():
    res = {}
    def attempt(name, fn):
        try:
            fn()
            res[name] = 'ok'
        except OSError as e:
            res[name] = ename(e)
    r6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    # Fragment header: next header UDP, offset 8 (bytes 64), not the first.
    frag = struct.pack('!BBHI', 17, 0, (8 << 3) | 1, 0x1234) + b'fragment data, no header'
    attempt('frag6', lambda: r6.sendto(ip6(44, frag), ('::1', 0)))
    attempt('none6', lambda: r6.sendto(ip6(59, b'data after no next header'), ('::1', 0)))
    # Hop-by-hop options header claiming 64 bytes, 8 there.
    attempt('exthdr6', lambda: r6.sendto(ip6(0, struct.pack('!BB6x', 17, 7)), ('::1', 0)))
    # (An IPv4 header length under 5 the kernel refuses itself: EINVAL.)
    t4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    attempt('tcp4', lambda: t4.sendto(b'abc', ('127.0.0.1', 0)))
    t6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_TCP)
    attempt('tcp6', lambda: t6.sendto(b'abc', ('::1', 0)))
    print(json.dumps(res), flush=True)

if sys.argv[1] == 'recv':
    recv()
elif sys.argv[1] == 'send':
    send(json.loads(sys.argv[2]), sys.argv[3])
else:
    odd()
