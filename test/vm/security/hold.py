# Holds a listing of the vordr family open without reading it, for
# test/vm/security.test.mjs (issue 15, 5c).  Run as an unprivileged user:
#   hold.py FAMILY FILLER_CMD FLAG_ATTR FLAG_ID LIST_CMD
# Opens a generic netlink socket with the smallest receive buffer, fills
# it with replies to FILLER_CMD requests (FLAG_ATTR = FLAG_ID) it never
# reads, then asks for LIST_CMD as a netlink dump would be asked
# (NLM_F_DUMP) and as a page is (NLM_F_ACK), prints "held", and sleeps
# with the socket open.  The numbers come from the schema (the test).
import socket, struct, sys, time

NETLINK_GENERIC = 16
GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 1, 4, 0x300

def msg(family, flags, seq, cmd, attrs=b''):
    body = struct.pack('BBH', cmd, 1, 0) + attrs
    return struct.pack('=IHHII', 16 + len(body), family, flags, seq, 0) + body

def attr(t, data):
    a = struct.pack('=HH', 4 + len(data), t) + data
    return a + b'\0' * (-len(a) % 4)

def family_id(s, name):
    s.send(msg(GENL_ID_CTRL, NLM_F_REQUEST, 1, CTRL_CMD_GETFAMILY,
               attr(CTRL_ATTR_FAMILY_NAME, name.encode() + b'\0')))
    d = s.recv(65536)
    off = 20
    while off + 4 <= len(d):
        ln, t = struct.unpack_from('=HH', d, off)
        if t == CTRL_ATTR_FAMILY_ID:
            return struct.unpack_from('=H', d, off + 4)[0]
        off += (ln + 3) & ~3
    raise SystemExit('family %s not found' % name)

fam, filler, flag_attr, flag_id, list_cmd = sys.argv[1], *map(int, sys.argv[2:6])
socks = []
for flags in (NLM_F_REQUEST | NLM_F_DUMP, NLM_F_REQUEST | NLM_F_ACK):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
    s.bind((0, 0))
    fid = family_id(s, fam)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    for i in range(64):
        s.send(msg(fid, NLM_F_REQUEST, 100 + i, filler, attr(flag_attr, struct.pack('=H', flag_id))))
    s.send(msg(fid, flags, 1000, list_cmd))
    socks.append(s)
print('held', flush=True)
time.sleep(3600)
