// Events on the `events` multicast group, what their flags choose, squelch,
// dropped events counted, `unkrule pending` answered by a listener, rules
// that expire, and per-application statistics. Runs as root in the test VM
// with vordr.ko loaded; each test leaves the module's defaults and a clean
// kernel log.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  killAll, track, schema, Agent, C, Kernel, addr, assertKlogClean, bin, copyExe, klogMark, runAsync, sleep, waitFor, workdir,
} from './util.mjs';

const W = workdir('events');
const lo4 = '127.0.0.1';
const lo6 = '::1';
let k;
let srv;
let cli;
let sen;   // the sentinel: an event that must come after the one a test waits not to see
const srvExe = copyExe(bin.python, join(W, 'srv', 'py'));
const cliExe = copyExe(bin.python, join(W, 'cli', 'py'));
const senExe = copyExe(bin.python, join(W, 'sen', 'py'));
const port = {};
let mark;

before(async () => {
  k = await Kernel.open();
  await k.reset();
  k.subscribe();
  [srv, cli, sen] = await Promise.all([srvExe, cliExe, senExe].map((e) => Agent.start(e)));
  port.udp4 = await srv.listen('udp', lo4, 'udp4');
  port.udp6 = await srv.listen('udp', lo6, 'udp6');
  port.http = await srv.listen('http', lo4, 'http');
  // A first connection makes the module look the listener's owner up.
  const c = await runAsync(bin.curl, ['-s', '-o', '/dev/null', '--connect-timeout', '10', `http://${lo4}:${port.http}/warm`]);
  assert.equal(c.code, 0, `curl to the http server: ${c.err}`);
});

after(async () => {
  killAll();
  try { await k.reset(); } finally { k.close(); }
});

afterEach(async () => {
  await k.reset();
  assertKlogClean(mark);
});

function fresh() {
  mark = klogMark();
  return k.events.length;
}

/** Events since index `from` for executable `path`. */
const since = (from, path) => k.events.slice(from).filter((e) => e.path === path);

/**
 * Makes an event that must arrive (a blocked datagram of the sentinel) and
 * waits for it: everything sent before it has been delivered by then.
 */
async function sentinel() {
  await k.add('block', 'udp', senExe);
  const from = k.events.length;
  // With squelch on, a sentinel within a second of the last one is itself
  // withheld: sent again after that second (a blocked connect() fails at
  // once now, so two sentinels can be that close).
  for (let i = 0; ; i++) {
    assert.equal(await sen.udp(lo4, port.udp4, 'sentinel'), 'EPERM');
    try {
      await k.waitEvent((e) => k.events.indexOf(e) >= from && e.path === senExe, i < 3 ? 1500 : 5000, 'the sentinel event');
      break;
    } catch (e) {
      if (i >= 3) throw e;
    }
  }
  await k.del(senExe);
}

/** The kernel's dev_t (major << 20 | minor) of a userspace st_dev. */
function kdev(dev) {
  const major = (dev >> 8) & 0xfff;
  const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
  return major * 2 ** 20 + minor;
}

test('a packet blocked by a rule sends one event with every field (IPv4 and IPv6 UDP)', async (t) => {
  const from = fresh();
  await k.set('squelch', 'disabled');
  await k.add('block', 'udp', cliExe);
  const st = statSync(cliExe, { bigint: true });
  for (const [h, p, af] of [[lo4, port.udp4, 2], [lo6, port.udp6, 10]]) {
    assert.equal(await cli.udp(h, p, 'ev'), 'EPERM');
    const e = await k.waitEvent((x) => k.events.indexOf(x) >= from && x.path === cliExe && x.af === af,
      5000, `the IPv${af === 2 ? 4 : 6} block event`);
    t.diagnostic(JSON.stringify({ ...e, saddr: addr(e.saddr), daddr: addr(e.daddr), ino: String(e.ino) }));
    assert.equal(e.verdict, C.value.block);
    assert.equal(e.reason, C.reason.rule);
    assert.equal(e.dir, C.dir.out);
    assert.equal(e.prot, C.prot.udp);
    assert.equal(addr(e.daddr), h);
    assert.equal(addr(e.saddr), h);
    assert.equal(e.dport, p);
    assert.ok(e.sport > 0);
    assert.equal(e.pid, cli.pid);
    assert.equal(e.uid, 0);
    assert.equal(e.dev, kdev(Number(st.dev)));
    assert.equal(BigInt(e.ino), st.ino);
    assert.equal(e.rpath, cliExe);
    assert.equal(e.rprot, C.prot.udp);
  }
  assert.equal(since(from, cliExe).length, 2, 'not exactly one event per blocked datagram');
});

test('ICMP events carry type and code; an unprivileged sender\'s event its uid; a directory rule its rpath', async () => {
  const from = fresh();
  await k.set('squelch', 'disabled');
  await k.add('block', 'icmp', bin.ping);
  const p4 = await runAsync(bin.ping, ['-4', '-c', '1', '-W', '1', lo4]);
  const p6 = await runAsync(bin.ping, ['-6', '-c', '1', '-W', '1', lo6]);
  assert.notEqual(p4.code, 0);
  assert.notEqual(p6.code, 0);
  const e4 = await k.waitEvent((x) => k.events.indexOf(x) >= from && x.path === bin.ping && x.af === 2, 5000, 'ping\'s event');
  const e6 = await k.waitEvent((x) => k.events.indexOf(x) >= from && x.path === bin.ping && x.af === 10, 5000, 'ping -6\'s event');
  assert.deepEqual([e4.prot, e4.sport, e4.dport, e4.reason, e4.rprot], [C.prot.icmp, 8, 0, C.reason.rule, C.prot.icmp]);
  assert.deepEqual([e6.prot, e6.sport, e6.dport], [C.prot.icmp, 128, 0]);
  // An unprivileged user's packet, blocked by a directory rule.
  const nobody = await Agent.start(cliExe, { uid: 65534 });
  try {
    await k.add('block', 'udp', `${join(W, 'cli')}/`);
    assert.equal(await nobody.udp(lo4, port.udp4, 'nobody'), 'EPERM');
    const e = await k.waitEvent((x) => k.events.indexOf(x) >= from && x.pid === nobody.pid, 5000, 'nobody\'s event');
    assert.equal(e.uid, 65534);
    assert.equal(e.path, cliExe);
    assert.equal(e.rpath, `${join(W, 'cli')}/`);
  } finally {
    nobody.kill();
  }
});

test('an inbound packet dropped by the receiving server\'s rule sends an event with dir in', async () => {
  const from = fresh();
  // A datagram to a socket that never sent follows unkproc until the
  // module has found its owner (asynchronously): one datagram first.
  assert.equal(await cli.udp(lo4, port.udp4, 'inbound-warm'), 'ok');
  await waitFor(async () => (await srv.seen('udp4')).includes('inbound-warm'), 'the first datagram');
  await sleep(300);
  await k.add('block', 'udp', srvExe);
  assert.equal(await cli.udp(lo4, port.udp4, 'inbound'), 'ok');
  const e = await k.waitEvent((x) => k.events.indexOf(x) >= from && x.path === srvExe, 5000, 'the inbound block event');
  assert.equal(e.dir, C.dir.in);
  assert.equal(e.verdict, C.value.block);
  assert.equal(e.dport, port.udp4);
  assert.equal(e.rpath, srvExe);
});

test('norule, drops and accepts choose which events are sent', async () => {
  const from = fresh();
  await k.set('squelch', 'disabled');
  // norule enabled (the default): an unmatched packet sends an allow/norule event.
  assert.equal(await cli.udp(lo4, port.udp4, 'nr1'), 'ok');
  const e = await k.waitEvent((x) => k.events.indexOf(x) >= from && x.path === cliExe, 5000, 'a norule event');
  assert.deepEqual([e.verdict, e.reason], [C.value.allow, C.reason.norule]);
  assert.equal(e.rpath, undefined, 'a norule event names a rule');
  // norule disabled: none.
  await k.set('norule', 'disabled');
  let mark2 = k.events.length;
  assert.equal(await cli.udp(lo4, port.udp4, 'nr2'), 'ok');
  await sentinel();
  assert.deepEqual(since(mark2, cliExe), [], 'an event with norule disabled');
  // drops disabled: a blocked packet sends none.
  await k.add('block', 'udp', cliExe);
  await k.set('drops', 'disabled');
  mark2 = k.events.length;
  assert.equal(await cli.udp(lo4, port.udp4, 'dr'), 'EPERM');
  await k.set('drops', 'enabled');
  await sentinel();
  assert.deepEqual(since(mark2, cliExe), [], 'a drop event with drops disabled');
  // accepts: disabled (the default) none, enabled one, for a packet a rule allows.
  await k.add('allow', 'udp', cliExe);
  mark2 = k.events.length;
  assert.equal(await cli.udp(lo4, port.udp4, 'ac1'), 'ok');
  await sentinel();
  assert.deepEqual(since(mark2, cliExe), [], 'an accept event with accepts disabled');
  await k.set('accepts', 'enabled');
  mark2 = k.events.length;
  assert.equal(await cli.udp(lo4, port.udp4, 'ac2'), 'ok');
  const a = await k.waitEvent((x) => k.events.indexOf(x) >= mark2 && x.path === cliExe, 5000, 'an accept event');
  assert.deepEqual([a.verdict, a.reason, a.rpath, a.rprot], [C.value.allow, C.reason.rule, cliExe, C.prot.udp]);
});

test('squelch withholds repeated events of one application and protocol, counts them, and reports them in the next event', async (t) => {
  fresh();
  await k.set('norule', 'disabled');
  await k.add('block', 'udp', cliExe);
  const N = 30;
  // Squelch disabled: one event per packet.
  await k.set('squelch', 'disabled');
  let from = k.events.length;
  let sq0 = await k.flag('squelched');
  let r = await cli.call('udp', { host: lo4, port: port.udp4, count: N });
  assert.deepEqual(r.errs, { EPERM: N });
  await sentinel();
  assert.equal(since(from, cliExe).length, N, 'squelch disabled, yet events were withheld');
  assert.equal(await k.flag('squelched'), sq0);
  // Squelch enabled: fewer events; sent + withheld = packets.
  await k.set('squelch', 'enabled');
  from = k.events.length;
  sq0 = await k.flag('squelched');
  r = await cli.call('udp', { host: lo4, port: port.udp4, count: N });
  assert.deepEqual(r.errs, { EPERM: N });
  await sentinel();
  const sent = since(from, cliExe);
  const withheld = (await k.flag('squelched')) - sq0;
  t.diagnostic(`${N} blocked datagrams: ${sent.length} events, squelched ${withheld}`);
  assert.ok(sent.length >= 1 && sent.length < N, `${sent.length} events for ${N} repeats`);
  assert.equal(sent.length + withheld, N, 'events sent and withheld do not add up to the packets');
  // Another protocol of the same application is not squelched with it.
  await k.add('block', 'tcp', cliExe);
  const tcp = cli.tcp(lo4, port.http, 'x', 1);
  await k.waitEvent((x) => k.events.indexOf(x) >= from && x.path === cliExe && x.prot === C.prot.tcp, 5000, 'a tcp event while udp is squelched');
  await tcp;
  // Later, the next udp event reports how many were withheld since the last one.
  const end = Date.now() + 15_000;
  let next;
  while (!next && Date.now() < end) {
    const i = k.events.length;
    await cli.udp(lo4, port.udp4, 'later');
    await sentinel();
    next = since(i, cliExe).find((x) => x.prot === C.prot.udp);
    if (!next) await sleep(500);
  }
  assert.ok(next, 'squelch never let a udp event through again in 15 s');
  t.diagnostic(`the next event: count=${next.count}`);
  assert.ok(next.count >= 1, `the next event does not count the withheld ones (count ${next.count})`);
});

const LISTENER = String.raw`
import errno, json, socket, struct, sys
def attrs(buf):
    i, out = 0, []
    while i + 4 <= len(buf):
        l, t = struct.unpack_from('HH', buf, i)
        if l < 4:
            break
        out.append((t & 0x3fff, buf[i + 4:i + l]))
        i += (l + 3) & ~3
    return out
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 16)
s.bind((0, 0))
name = b'vordr\0'
a = struct.pack('HH', 4 + len(name), 2) + name + b'\0' * ((4 - len(name) % 4) % 4)
g = struct.pack('BBH', 3, 1, 0)
s.send(struct.pack('IHHII', 16 + len(g) + len(a), 0x10, 1, 1, 0) + g + a)
d = s.recv(65536)
grp = None
for t, v in attrs(d[20:struct.unpack_from('I', d)[0]]):
    if t == 7:
        for _, gr in attrs(v):
            gd = dict(attrs(gr))
            if gd[1].rstrip(b'\0') == b'events':
                grp = struct.unpack('I', gd[2][:4])[0]
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, int(sys.argv[1]))
# NETLINK_BROADCAST_ERROR: the kernel's multicast reports this socket's overruns
# to the sender (without it netlink_broadcast() cannot tell the module).
if sys.argv[2] == 'broadcast-error':
    s.setsockopt(270, 4, 1)
s.setsockopt(270, 1, grp)
print('ready', flush=True)
sys.stdin.readline()
s.setblocking(False)
n, overrun, msgs = 0, False, []
while True:
    try:
        d = s.recv(65536)
    except BlockingIOError:
        break
    except OSError as e:
        if e.errno == errno.ENOBUFS:
            overrun = True
            continue
        raise
    i = 0
    while i < len(d):
        l = struct.unpack_from('I', d, i)[0]
        n += 1
        path = None
        for t, v in attrs(d[i + 20:i + l]):
            if t == int(sys.argv[3]):
                path = v.rstrip(b'\0').decode()
        msgs.append([d[i + 16], path])
        i += (l + 3) & ~3
print(json.dumps({'events': n, 'overrun': overrun, 'msgs': msgs}), flush=True)
`;

test('a listener that does not read loses events, counted in evdrops; the packet path does not wait; other listeners get every event', async (t) => {
  const from = fresh();
  await k.set('squelch', 'disabled');
  await k.set('norule', 'disabled');
  await k.add('block', 'udp', cliExe);
  const script = join(W, 'listener.py');
  writeFileSync(script, LISTENER);
  // An unprivileged listener with the smallest receive buffer, not reading.
  const l = track(spawn('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', bin.python, '-S', script, '1', 'broadcast-error', String(schema.attrs.path.id)],
    { stdio: ['pipe', 'pipe', 'pipe'] }));
  let err = '';
  l.stderr.on('data', (d) => { err += d; });
  const lines = createInterface({ input: l.stdout })[Symbol.asyncIterator]();
  assert.equal((await lines.next()).value, 'ready', err);
  const drops0 = await k.flag('evdrops');
  const N = 300;
  const t0 = Date.now();
  const r = await cli.call('udp', { host: lo4, port: port.udp4, count: N }, 60_000);
  t.diagnostic(`${N} blocked datagrams sent in ${Date.now() - t0} ms`);
  assert.deepEqual(r.errs, { EPERM: N });
  await sentinel();
  l.stdin.write('go\n');
  const res = JSON.parse((await lines.next()).value);
  l.kill();
  const drops = (await k.flag('evdrops')) - drops0;
  t.diagnostic(`slow listener got ${JSON.stringify(res)}; evdrops +${drops}; root listener got ${since(from, cliExe).length}, lost ${k.lost}`);
  assert.ok(res.events >= 1, 'the unprivileged listener got no event at all');
  assert.ok(res.events < N, 'a listener with a 2 KB buffer kept every event');
  assert.ok(res.overrun, 'the slow listener was not told of its overrun (ENOBUFS)');
  assert.ok(drops >= N - res.events, `evdrops grew by ${drops}, the slow listener missed ${N - res.events}`);
  assert.equal(since(from, cliExe).length, N, 'the reading listener lost events to the slow one');
});

test('unkrule pending drops the packet and asks; the listener\'s allow rule lets curl\'s own retry through', async (t) => {
  const from = fresh();
  await k.add('allow', 'any', srvExe);
  await k.set('unkrule', 'pending');
  const q0 = await k.flag('qpackets');
  let answered = 0;
  const stop = k.onEvent((e) => {
    if (e.path === bin.curl && e.verdict === C.value.pending && !answered++) {
      k.add('allow', 'tcp', bin.curl).catch(() => {});
    }
  });
  try {
    const c = await runAsync(bin.curl, ['-s', '-o', '/dev/null', '--connect-timeout', '15', `http://${lo4}:${port.http}/pending`]);
    t.diagnostic(`curl exited ${c.code} after ${c.ms} ms`);
    const e = k.events.slice(from).find((x) => x.path === bin.curl && x.verdict === C.value.pending);
    assert.ok(e, 'no pending event for curl');
    assert.deepEqual([e.reason, e.prot, e.dir, e.dport], [C.reason.norule, C.prot.tcp, C.dir.out, port.http]);
    assert.equal(c.code, 0, 'curl\'s retry did not pass after the allow rule');
    assert.ok(c.ms >= 900, `curl connected in ${c.ms} ms: its first SYN was not dropped`);
    assert.deepEqual((await k.rules()).filter((r) => r.path === bin.curl).map((r) => `${r.verdict} ${r.prot}`), ['allow tcp']);
  } finally {
    stop();
  }
  // UDP: the pending datagram fails at once; after a block answer the retry fails too.
  assert.equal(await cli.udp(lo4, port.udp4, 'pend1'), 'EPERM');
  const e = await k.waitEvent((x) => k.events.indexOf(x) >= from && x.path === cliExe && x.verdict === C.value.pending,
    5000, 'python\'s pending event');
  assert.equal(e.prot, C.prot.udp);
  await k.add('block', 'udp', cliExe);
  assert.equal(await cli.udp(lo4, port.udp4, 'pend2'), 'EPERM');
  await k.add('allow', 'udp', cliExe);
  assert.equal(await cli.udp(lo4, port.udp4, 'pend3'), 'ok');
  assert.ok((await k.flag('qpackets')) > q0, 'qpackets did not count');
});

test('a rule added with a timeout enforces until it expires, and the dump shows the seconds left', async (t) => {
  fresh();
  await k.add('block', 'udp', cliExe, { timeout: 3 });
  await k.add('block', 'tcp', cliExe);
  const [r] = (await k.rules()).filter((x) => x.prot === 'udp');
  t.diagnostic(JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? String(v) : v)));
  assert.ok(r.timeout >= 1 && r.timeout <= 3, `seconds left: ${r.timeout}`);
  const [perm] = (await k.rules()).filter((x) => x.prot === 'tcp');
  assert.ok(!perm.timeout, `a permanent rule has a timeout: ${perm.timeout}`);
  assert.equal(await cli.udp(lo4, port.udp4), 'EPERM');
  await waitFor(async () => !(await k.rules()).some((x) => x.prot === 'udp'), 'the rule to expire', 10_000);
  assert.equal(await cli.udp(lo4, port.udp4), 'ok', 'blocked after the rule expired');
  assert.equal((await k.rules()).length, 1, 'the permanent rule went too');
});

test('stats: per executable, packets and bytes allowed and blocked', async (t) => {
  fresh();
  const stat = async (path) => {
    const all = await k.request('stats');
    return all.find((x) => x.path === path) ?? { apackets: 0n, abytes: 0n, bpackets: 0n, bbytes: 0n };
  };
  const s0 = await stat(cliExe);
  await k.add('allow', 'udp', cliExe);
  assert.deepEqual((await cli.call('udp', { host: lo4, port: port.udp4, count: 5, data: 'x'.repeat(100) })).sent, 5);
  await k.add('block', 'udp', cliExe);
  assert.deepEqual((await cli.call('udp', { host: lo4, port: port.udp4, count: 7, data: 'y'.repeat(100) })).errs, { EPERM: 7 });
  const s1 = await stat(cliExe);
  t.diagnostic(JSON.stringify(s1, (_k, v) => (typeof v === 'bigint' ? String(v) : v)));
  const d = (f) => Number(BigInt(s1[f]) - BigInt(s0[f]));
  assert.equal(d('apackets'), 5);
  assert.equal(d('bpackets'), 7);
  assert.ok(d('abytes') >= 5 * 128 && d('abytes') < 5 * 200, `abytes +${d('abytes')}`);
  assert.ok(d('bbytes') >= 7 * 128 && d('bbytes') < 7 * 200, `bbytes +${d('bbytes')}`);
});

test('rchngq: when enabled, every rule change is followed on the group by the whole table', async () => {
  fresh();
  const script = join(W, 'listener.py');
  writeFileSync(script, LISTENER);
  // A raw listener: the addon hands its subscribers EVENT messages only.
  const l = track(spawn(bin.python, ['-S', script, String(1 << 20), '-', String(schema.attrs.path.id)],
    { stdio: ['pipe', 'pipe', 'pipe'] }));
  let err = '';
  l.stderr.on('data', (d) => { err += d; });
  const lines = createInterface({ input: l.stdout })[Symbol.asyncIterator]();
  assert.equal((await lines.next()).value, 'ready', err);
  await k.add('block', 'udp', '/opt/rq/a');   // rchngq disabled: no table
  await k.set('rchngq', 'enabled');
  await k.add('allow', 'tcp', '/opt/rq/b');
  await k.set('rchngq', 'disabled');
  await k.add('block', 'tcp', '/opt/rq/c');   // no table again
  l.stdin.write('go\n');
  const res = JSON.parse((await lines.next()).value);
  l.kill();
  const { rule_clear: clear, rule_list: list } = schema.commands;
  const tables = res.msgs.filter(([cmd]) => cmd === clear.id || cmd === list.id);
  assert.deepEqual(tables[0], [clear.id, null], `no RULE_CLEAR first: ${JSON.stringify(res.msgs)}`);
  assert.deepEqual(tables.slice(1).map(([cmd, path]) => `${cmd} ${path}`).sort(),
    [`${list.id} /opt/rq/a`, `${list.id} /opt/rq/b`], 'not the table after the change, or a table while disabled');
});
