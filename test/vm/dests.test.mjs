// Where each executable's packets went (issue 14, item 5): the module's
// DESTS dump, fed by the known-socket cache's per-flow counts, on real
// connections of python agents: a client's rows name the server's port
// (to), a server's its own (from), also when it speaks first; blocked
// packets are counted on the row they were going to; one datagram socket
// talking to many peers gets a row each, past the table's bound the least used summed as "other";
// every packet STATS counts for an executable is in its rows (nothing
// lost); the daemon's `stats` prints them. Runs as root in the test VM
// with vordr.ko loaded; leaves the module's defaults as it found them.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  C, Agent, Kernel, addr, assertKlogClean, bin, cli as vordrCli, copyExe, killAll, klogMark, run, sleep, workdir,
} from './util.mjs';

const W = workdir('dests');
const srvExe = copyExe(bin.python, join(W, 'srv', 'py'));
const cliExe = copyExe(bin.python, join(W, 'cli', 'py'));
const sprayExe = copyExe(bin.python, join(W, 'spray', 'py'));
const bannerExe = copyExe(bin.python, join(W, 'banner', 'py'));
const PER_IDENT = 24;   // kmod/vordr.h VORDR_DEST_PER_IDENT, as README states it
let k;
let srv;
let cli;
let mark;

const spray = join(W, 'spray.py');
writeFileSync(spray, String.raw`
import socket, sys
# One unconnected datagram socket, one datagram to each of N ports, the i-th i+1 times.
n, base = int(sys.argv[1]), int(sys.argv[2])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(n):
    for _ in range(i + 1):
        try:
            u.sendto(b'x', ('127.0.0.1', base + i))
        except OSError:
            pass
print('done', flush=True)
`);

const banner = join(W, 'banner.py');
writeFileSync(banner, String.raw`
import socket, subprocess, sys
# A server that speaks first (as SSH, SMTP, FTP do): its accepted sockets'
# first packets are its own sends, not the client's.  The client: argv[1].
l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
l.bind(('127.0.0.1', 0))
l.listen(8)
port = l.getsockname()[1]
client = subprocess.Popen([sys.argv[1], '-c', r'''
import socket, sys
for _ in range(3):
    c = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)
    assert c.recv(16) == b'hi\n'
    c.close()
''', str(port)])
for _ in range(3):
    c, _ = l.accept()
    c.sendall(b'hi\n')
    c.close()
assert client.wait(10) == 0
print(port, flush=True)
`);

before(async () => {
  k = await Kernel.open();
  await k.reset();
  srv = await Agent.start(srvExe);
  cli = await Agent.start(cliExe);
});

after(async () => {
  killAll();
  try { await k.reset(); } finally { k.close(); }
});

afterEach(() => assertKlogClean(mark));

const total = (r) => Number(r.apackets ?? 0n) + Number(r.bpackets ?? 0n);

/** The DESTS rows of @exe, once they hold every packet STATS counts for it (the sweep folds within 4 s). */
async function destsOf(exe, ms = 12_000) {
  const t0 = Date.now();
  for (;;) {
    const stats = (await k.request('stats')).find((s) => s.path === exe);
    const rows = (await k.request('dests')).filter((d) => d.path === exe);
    const sum = rows.reduce((n, r) => n + total(r), 0);
    if (stats && sum === total(stats)) return rows;
    if (Date.now() - t0 > ms) {
      assert.fail(`${exe}: its rows hold ${sum} packets, STATS ${stats ? total(stats) : 'none'}: ${JSON.stringify(rows, (_, v) => (typeof v === 'bigint' ? String(v) : v))}`);
    }
    await sleep(500);
  }
}

const row = (rows, ip, side, port) =>
  rows.find((r) => r.daddr && addr(r.daddr) === ip && r.qside === C.side[side] && r.dport === port);

test('a client\'s connection is a row to the server\'s port, the server\'s a row from it to its own', async () => {
  mark = klogMark();
  await k.add('allow', 'tcp', srvExe);
  await k.add('allow', 'tcp', cliExe);
  const port = await srv.listen('tcp', '127.0.0.1', 'd1');
  for (let i = 0; i < 3; i++) assert.equal(await cli.tcp('127.0.0.1', port), 'ok');
  const c = row(await destsOf(cliExe), '127.0.0.1', 'to', port);
  assert.ok(c, 'the client\'s row to the server\'s port');
  assert.equal(c.prot, C.prot.tcp);
  assert.ok(c.apackets >= 9n, `three connections' packets allowed: ${c.apackets}`);
  const s = row(await destsOf(srvExe), '127.0.0.1', 'from', port);
  assert.ok(s, 'the server\'s row: from the client, to its own port');
  assert.ok(s.apackets >= 9n, `${s.apackets}`);
});

test('a server that speaks first: its connections are one row from its own port, not one a client port', async () => {
  mark = klogMark();
  await k.add('allow', 'tcp', bannerExe);
  await k.add('allow', 'tcp', cliExe);
  const r = run(bannerExe, ['-S', banner, cliExe]);
  assert.equal(r.code, 0, r.err);
  const port = Number(r.out.trim());
  const rows = (await destsOf(bannerExe)).filter((d) => d.prot === C.prot.tcp);
  const show = JSON.stringify(rows, (_, v) => (typeof v === 'bigint' ? String(v) : v));
  assert.equal(rows.length, 1, `one row: ${show}`);
  assert.ok(row(rows, '127.0.0.1', 'from', port), `from the client to its own port ${port}: ${show}`);
  assert.ok(rows[0].apackets >= 9n, show);
});

test('blocked packets are counted on the row they were going to', async () => {
  mark = klogMark();
  const port = await srv.listen('tcp', '127.0.0.1', 'd2');
  await k.add('block', 'tcp', cliExe);
  assert.equal(await cli.tcp('127.0.0.1', port), 'ECONNREFUSED');
  const r = row(await destsOf(cliExe), '127.0.0.1', 'to', port);
  assert.ok(r && r.bpackets >= 1n, `the refused SYN counted as blocked: ${JSON.stringify(r, (_, v) => (typeof v === 'bigint' ? String(v) : v))}`);
  await k.add('allow', 'tcp', cliExe);
});

test(`one datagram socket to ${PER_IDENT + 6} peers: a row each up to ${PER_IDENT}, the least used summed as other, no packet lost`, async () => {
  mark = klogMark();
  await k.add('allow', 'udp', sprayExe);
  await k.add('allow', 'udp', srvExe);
  const n = PER_IDENT + 6;
  // Each port has a receiver (another executable): a closed port's ICMP
  // unreachable would be a row of its own for the sender.
  for (let i = 0; i < n; i++) await srv.listen('udp', '127.0.0.1', `spray${i}`, { port: 40000 + i });
  const r = run(sprayExe, ['-S', spray, String(n), '40000']);
  assert.equal(r.code, 0, r.err);
  const rows = await destsOf(sprayExe);
  const addressed = rows.filter((d) => d.daddr);
  const other = rows.filter((d) => !d.daddr);
  assert.equal(addressed.length, PER_IDENT, `${PER_IDENT} destinations kept`);
  assert.equal(other.length, 1, 'one other row');
  // How many rows went into it: at least the 6 past the bound (a row pushed out and met again goes twice).
  assert.ok(other[0].count >= n - PER_IDENT, `it says how many destinations it sums: ${other[0].count}`);
  // The busiest (the last ports, sent to most) are the ones kept.
  for (let i = n - PER_IDENT; i < n; i++) {
    const d = row(rows, '127.0.0.1', 'to', 40000 + i);
    assert.ok(d, `port ${40000 + i} kept: ${JSON.stringify(rows, (_, v) => (typeof v === 'bigint' ? String(v) : v))}`);
    assert.equal(d.apackets, BigInt(i + 1), `port ${40000 + i}: its ${i + 1} datagrams`);
  }
});

test('the daemon\'s stats prints an application\'s destinations under it', async () => {
  mark = klogMark();
  const port = await srv.listen('tcp', '127.0.0.1', 'd4');
  assert.equal(await cli.tcp('127.0.0.1', port), 'ok');
  await destsOf(cliExe);
  const r = run(process.execPath, [vordrCli], { input: 'stats\n' });
  assert.equal(r.code, 0, r.err);
  const lines = r.out.split('\n');
  const at = lines.findIndex((l) => l.startsWith(cliExe));
  assert.ok(at >= 0, r.out);
  assert.ok(lines.slice(at + 1).some((l) => l.startsWith(`  tcp to 127.0.0.1 port ${port} `)), r.out);
});
