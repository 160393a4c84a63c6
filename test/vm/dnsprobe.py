"""DNS for the VM tests (test/vm/dns.test.mjs): a server with a fixed zone,
and a client that asks, forges and fuzzes, all on loopback.

  serve ADDR                      answer the zone on ADDR:53 (UDP and TCP)
                                  until killed; prints "ready"
  ask NAME IP TTL SERVER FROM [tcp] [PORT]
                                  ask SERVER:53 for NAME (A or AAAA by IP's
                                  family); the answer (IP, TTL) is sent from
                                  FROM:53 (SERVER: the real one; another
                                  address: a forgery); then connect to
                                  IP:PORT (default 9), printing the errno name
  other NAME IP SERVER [PORT]     ask from one socket; the answer goes to
                                  another socket of this process that never
                                  asked; then connect as ask does
  connect IP PORT                 connect only, printing the errno name
  many N SERVER                   ask N names (n0.many.test ...), each
                                  answered 127.0.1.1, ttl 300; prints "done"
  fuzz N SERVER SEED              one query, N malformed answers to it from
                                  SERVER:53 (asked again every 16); prints
                                  "done N"

Only the standard library: no DNS package is in Debian's base system.
"""
import errno
import random
import socket
import struct
import sys
import threading

A, CNAME, AAAA, IN = 1, 5, 28, 1

# name -> list of (type, ttl, data): data is an address or a CNAME target.
ZONE = {
    'a.vordr.test': [(A, 60, '127.0.0.2')],
    'six.vordr.test': [(AAAA, 60, '::1')],
    'c.vordr.test': [(CNAME, 60, 'c2.vordr.test')],
    'c2.vordr.test': [(CNAME, 60, 'target.elsewhere.test')],
    'target.elsewhere.test': [(A, 60, '127.0.0.3')],
    'short.vordr.test': [(A, 2, '127.0.0.4')],
}


def wire_name(name):
    out = b''
    for label in name.rstrip('.').split('.'):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b'\0'


def query(txid, name, qtype):
    return struct.pack('>HHHHHH', txid, 0x0100, 1, 0, 0, 0) + wire_name(name) + struct.pack('>HH', qtype, IN)


def parse_question(msg):
    txid, = struct.unpack_from('>H', msg, 0)
    pos, labels = 12, []
    while msg[pos]:
        labels.append(msg[pos + 1:pos + 1 + msg[pos]].decode())
        pos += 1 + msg[pos]
    qtype, = struct.unpack_from('>H', msg, pos + 1)
    return txid, '.'.join(labels).lower(), qtype, msg[12:pos + 5]


def rr(name_wire, rtype, ttl, data):
    if rtype == A:
        rdata = socket.inet_pton(socket.AF_INET, data)
    elif rtype == AAAA:
        rdata = socket.inet_pton(socket.AF_INET6, data)
    else:
        rdata = wire_name(data)
    return name_wire + struct.pack('>HHIH', rtype, IN, ttl, len(rdata)) + rdata


def answer(txid, question, records):
    head = struct.pack('>HHHHHH', txid, 0x8180, 1, len(records), 0, 0)
    return head + question + b''.join(records)


def zone_answer(msg):
    txid, name, qtype, question = parse_question(msg)
    records, seen = [], 0
    while name in ZONE and seen < 8:
        seen += 1
        nxt = None
        for rtype, ttl, data in ZONE[name]:
            if rtype == CNAME:
                records.append(rr(wire_name(name), rtype, ttl, data))
                nxt = data
            elif rtype == qtype:
                records.append(rr(wire_name(name), rtype, ttl, data))
        if nxt is None:
            break
        name = nxt
    return answer(txid, question, records)


def serve(addr):
    fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
    u = socket.socket(fam, socket.SOCK_DGRAM)
    u.bind((addr, 53))
    t = socket.socket(fam, socket.SOCK_STREAM)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind((addr, 53))
    t.listen(16)

    def tcp():
        while True:
            c, _ = t.accept()
            with c:
                try:
                    n, = struct.unpack('>H', c.recv(2))
                    m = b''
                    while len(m) < n:
                        m += c.recv(n - len(m))
                    a = zone_answer(m)
                    c.sendall(struct.pack('>H', len(a)) + a)
                except Exception:
                    pass

    threading.Thread(target=tcp, daemon=True).start()
    print('ready', flush=True)
    while True:
        m, peer = u.recvfrom(4096)
        try:
            u.sendto(zone_answer(m), peer)
        except Exception:
            pass


def fam_of(ip):
    return socket.AF_INET6 if ':' in ip else socket.AF_INET


def connect(ip, port):
    s = socket.socket(fam_of(ip), socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect((ip, port))
        return 'OK'
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else 'TIMEOUT'
    finally:
        s.close()


def ask(name, ip, ttl, server, sender, tcp=False, port=9):
    qtype = AAAA if ':' in ip else A
    txid = random.randrange(65536)
    q = query(txid, name, qtype)
    rtype = AAAA if qtype == AAAA else A
    a = answer(txid, q[12:], [rr(wire_name(name), rtype, ttl, ip)])
    if tcp:
        srv = socket.socket(fam_of(server), socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((server, 53))
        srv.listen(1)
        c = socket.create_connection((server, 53), timeout=5)
        s, _ = srv.accept()
        c.sendall(struct.pack('>H', len(q)) + q)
        s.recv(2 + len(q))
        s.sendall(struct.pack('>H', len(a)) + a)
        c.recv(4096)
        c.close()
        s.close()
        srv.close()
    else:
        cli = socket.socket(fam_of(server), socket.SOCK_DGRAM)
        cli.bind(('::1' if ':' in server else '127.0.0.1', 0))
        cli.settimeout(5)
        srv = socket.socket(fam_of(sender), socket.SOCK_DGRAM)
        srv.bind((sender, 53))
        cli.sendto(q, (server, 53))
        srv.sendto(a, cli.getsockname()[:2])
        cli.recvfrom(4096)
        cli.close()
        srv.close()
    return connect(ip, port)


def other(name, ip, server, port=9):
    asker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    asker.bind(('127.0.0.1', 0))
    bystander = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    bystander.bind(('127.0.0.1', 0))
    bystander.settimeout(5)
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind((server, 53))
    txid = random.randrange(65536)
    q = query(txid, name, A)
    asker.sendto(q, (server, 53))
    # The bystander has sent nothing on its socket: make the module know
    # its owner first, with a datagram to nowhere in particular.
    bystander.sendto(b'x', ('127.0.0.1', 9))
    srv.sendto(answer(txid, q[12:], [rr(wire_name(name), A, 60, ip)]), bystander.getsockname())
    bystander.recvfrom(4096)
    return connect(ip, port)


def many(n, server):
    cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cli.bind(('127.0.0.1', 0))
    cli.settimeout(5)
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind((server, 53))
    for i in range(n):
        txid = i & 0xffff
        q = query(txid, f'n{i}.many.test', A)
        cli.sendto(q, (server, 53))
        srv.sendto(answer(txid, q[12:], [rr(wire_name(f'n{i}.many.test'), A, 300, '127.0.1.1')]), cli.getsockname())
        cli.recvfrom(4096)
    return 'done'


def mutate(rng, txid, question, base):
    """One malformed answer to the query (txid, question)."""
    head = struct.pack('>HHHHHH', txid, 0x8180, 1, rng.randrange(0, 70) if rng.random() < 0.3 else rng.randrange(65536), 0, 0)
    kind = rng.randrange(8)
    if kind == 0:  # truncated anywhere
        m = base[:rng.randrange(len(base) + 1)]
    elif kind == 1:  # random bytes after the question
        m = head + question + rng.randbytes(rng.randrange(0, 600))
    elif kind == 2:  # a compression pointer to itself, forwards or in a loop
        p = 12 + len(question)
        target = rng.choice([p, p + 2, p + 40, 0x3fff, 12, rng.randrange(0x4000)])
        m = head + question + struct.pack('>H', 0xc000 | target) + struct.pack('>HHIH', A, IN, 60, 4) + bytes(4)
    elif kind == 3:  # label types 0x40 and 0x80, over-long labels
        m = head + question + bytes([rng.choice([0x40, 0x80, 0x7f, 63, 64])]) + rng.randbytes(rng.randrange(0, 300))
    elif kind == 4:  # a CNAME chain longer than the module follows, and back
        recs = b''
        names = [f'l{i}.chain.test' for i in range(12)]
        recs += rr(question[:-4], CNAME, 60, names[0])
        for i in range(11):
            recs += rr(wire_name(names[i]), CNAME, 60, names[i + 1])
        recs += rr(wire_name(names[11]), CNAME, 60, 'q.fuzz.test')
        m = struct.pack('>HHHHHH', txid, 0x8180, 1, 13, 0, 0) + question + recs
    elif kind == 5:  # rdlength beyond the end, or an A record of the wrong size
        m = head + question + b'\xc0\x0c' + struct.pack('>HHIH', rng.choice([A, AAAA, CNAME]), IN, 60, rng.randrange(65536)) + rng.randbytes(rng.randrange(0, 20))
    elif kind == 6:  # bytes flipped in a valid answer
        b = bytearray(base)
        for _ in range(rng.randrange(1, 8)):
            b[rng.randrange(12 + len(question), len(b))] = rng.randrange(256)
        m = bytes(b)
    else:  # a name of 255+ bytes through pointers and labels
        long = b''.join(bytes([63]) + b'a' * 63 for _ in range(rng.randrange(3, 6)))
        m = head + question + long + b'\0' + struct.pack('>HHIH', A, IN, 60, 4) + bytes(4)
    return m


def fuzz(n, server, seed):
    rng = random.Random(seed)
    cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cli.bind(('127.0.0.1', 0))
    cli.setblocking(False)
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind((server, 53))
    srv.setblocking(False)
    dest = cli.getsockname()
    txid = 4242
    q = query(txid, 'q.fuzz.test', A)
    question = q[12:]
    base = answer(txid, question, [rr(b'\xc0\x0c', A, 60, '127.0.0.7'), rr(b'\xc0\x0c', AAAA, 60, '::1')])
    sent = 0
    while sent < n:
        if sent % 16 == 0:
            cli.sendto(q, (server, 53))
        try:
            srv.sendto(mutate(rng, txid, question, base), dest)
            sent += 1
        except BlockingIOError:
            pass
        # Drain both ends: full buffers would only drop (after the hook).
        for s in (cli, srv):
            try:
                while True:
                    s.recv(65536)
            except BlockingIOError:
                pass
    return f'done {sent}'


def main(argv):
    op = argv[1]
    if op == 'serve':
        serve(argv[2])
    elif op == 'ask':
        tcp = len(argv) > 7 and argv[7] == 'tcp'
        port = int(argv[8]) if len(argv) > 8 else 9
        print(ask(argv[2], argv[3], int(argv[4]), argv[5], argv[6], tcp, port), flush=True)
    elif op == 'other':
        print(other(argv[2], argv[3], argv[4], int(argv[5]) if len(argv) > 5 else 9), flush=True)
    elif op == 'connect':
        print(connect(argv[2], int(argv[3])), flush=True)
    elif op == 'many':
        print(many(int(argv[2]), argv[3]), flush=True)
    elif op == 'fuzz':
        print(fuzz(int(argv[2]), argv[3], int(argv[4])), flush=True)
    else:
        sys.exit(f'dnsprobe: no operation {op}')


if __name__ == '__main__':
    main(sys.argv)
