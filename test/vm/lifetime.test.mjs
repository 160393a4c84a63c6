// How long things last: a listener that fell behind keeps receiving
// events and is told what it lost (SPEC section 4), and the kernel keeps
// temporary rules (SPEC section 2: `for TIME`, `until exit`, `until
// reboot`).  Runs as root in the test VM with vordr.ko loaded, with the
// real daemon (`vordr --service`, `vordr` reading standard input) and the
// real addon; each test leaves the module's defaults and a clean kernel log.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  killAll, track, Agent, C, Kernel, schema, assertKlogClean, bigintJson, bin, cli, copyExe, klogMark, repo, run, sleep, waitFor, workdir,
} from './util.mjs';

const W = workdir('lifetime');
const lo4 = '127.0.0.1';
let k;
let mark;
const floodExe = copyExe(bin.python, join(W, 'flood', 'py'));
const markExe = copyExe(bin.python, join(W, 'mark', 'py'));
const srvExe = copyExe(bin.python, join(W, 'srv', 'py'));
const clientExe = copyExe(bin.python, join(W, 'client', 'py'));
let flood;
let marker;
let srv;     // the servers curl and the client talk to
let client;

before(async () => {
  k = await Kernel.open();
  await k.reset();
  [flood, marker, srv, client] = await Promise.all([floodExe, markExe, srvExe, clientExe].map((e) => Agent.start(e)));
});

after(async () => {
  killAll();
  try { await k.reset(); } finally { k.close(); }
});

afterEach(async () => {
  await k.reset();
  assertKlogClean(mark);
});

/**
 * A child printing JSON lines (the daemon's --service, a node script):
 * `lines` holds them parsed, in order; `text` keeps the raw standard error.
 */
function jsonChild(cmd, args, opts = {}) {
  const child = track(spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...opts }));
  const c = { child, lines: [], err: '', exited: null };
  child.stderr.setEncoding('utf8').on('data', (d) => { c.err += d; });
  child.stdin.on('error', () => {});
  child.on('exit', (code, signal) => { c.exited = { code, signal }; });
  createInterface({ input: child.stdout }).on('line', (l) => {
    try { c.lines.push(JSON.parse(l)); } catch { c.lines.push({ raw: l }); }
  });
  return c;
}

/** `vordr --service` with a rules file and policy file of its own. */
function service() {
  return jsonChild(process.execPath, [cli, '--service', '--rules', join(W, 'rules')], {
    cwd: repo, env: { ...process.env, VORDR_POLICY_FILE: join(W, 'policy') },
  });
}

/**
 * Sends one blocked datagram from `agent` every 300 ms until `c` has
 * printed an event of that executable after line `from`; the line's index.
 */
async function pokeUntilSeen(c, agent, from, what, ms = 30_000) {
  let found = -1;
  const find = () => {
    found = c.lines.findIndex((l, i) => i >= from && l.path === agent.exe);
    return found >= 0;
  };
  const t0 = Date.now();
  while (!find()) {
    if (Date.now() - t0 > ms || c.exited)
      assert.fail(`${what}: no event of ${agent.exe} within ${ms} ms (${c.lines.length} lines, ` +
        `${c.lines.length - from} since; exited ${JSON.stringify(c.exited)}; stderr: ${c.err.slice(-300)})`);
    assert.equal(await agent.udp(lo4, 9, 'poke'), 'EPERM');
    await sleep(300);
  }
  return found;
}

test('a listener stopped for 10 s under an event flood receives events again after SIGCONT and reports what it lost', async (t) => {
  mark = klogMark();
  await k.set('squelch', 'disabled');
  await k.add('block', 'udp', floodExe);
  await k.add('block', 'udp', markExe);
  const evdrops0 = await k.flag('evdrops');
  // The service puts its saved policy in force, replacing the lasting
  // rules: the test's rules are in its rules file.
  writeFileSync(join(W, 'rules'), `set squelch disabled\nblock udp "${floodExe}"\nblock udp "${markExe}"\n`);
  const s = service();
  await pokeUntilSeen(s, flood, 0, 'the service before the flood', 90_000);
  process.kill(s.child.pid, 'SIGSTOP');
  const stoppedAt = Date.now();
  const before = s.lines.length;
  // Far more than a 1 MB receive buffer holds.
  const N = 1500;
  const r = await flood.call('udp', { host: lo4, port: 9, count: N }, 120_000);
  assert.deepEqual(r.errs, { EPERM: N });
  t.diagnostic(`${N} blocked datagrams in ${Date.now() - stoppedAt} ms while the service was stopped`);
  await sleep(Math.max(0, 10_000 - (Date.now() - stoppedAt)));
  process.kill(s.child.pid, 'SIGCONT');
  const seen = await pokeUntilSeen(s, marker, before, 'the service after SIGCONT', 60_000);
  // A loss noticed at the end of the backlog comes with the lines after it.
  await sleep(1000);
  const after = s.lines.slice(before);
  const losses = after.filter((l) => l.lost);
  const flooded = after.filter((l) => l.path === floodExe).length;
  const evdrops = (await k.flag('evdrops')) - evdrops0;
  t.diagnostic(`after SIGCONT: ${flooded} flood events, losses ${JSON.stringify(losses)}, event at line ${seen}; evdrops +${evdrops}`);
  assert.ok(losses.length >= 1, 'the service did not report its loss');
  const last = losses[losses.length - 1];
  assert.ok(last.overruns >= 1, `no overrun counted: ${JSON.stringify(last)}`);
  assert.equal(typeof last.drops, 'number', `no drop count: ${JSON.stringify(last)}`);
  assert.ok(flooded < N, 'the service kept every event: no overrun was provoked');
  assert.ok(flooded + last.drops >= N, `${flooded} delivered + ${last.drops} dropped < ${N} sent`);
  assert.ok(last.evdrops >= last.drops, `evdrops ${last.evdrops} < the socket's ${last.drops} drops`);
  assert.ok(evdrops >= N - flooded, `evdrops grew by ${evdrops}, ${N - flooded} were not delivered`);
  s.child.kill('SIGTERM');
  await waitFor(() => s.exited, 'the service to stop', 10_000);
  assert.equal(s.exited.code, 0, `service exited ${JSON.stringify(s.exited)}: ${s.err}`);
});

// ---- temporary rules: the kernel's ------------------------------------------

const curl = realpathSync(bin.curl);
let httpPort;
let echoPort;

/** curl to the test's HTTP server: 'ok', or 'blocked' with its exit code. */
function curlGets() {
  const r = run(curl, ['-s', '-o', '/dev/null', '--connect-timeout', '2', '--max-time', '6', `http://${lo4}:${httpPort}/`]);
  return r.code === 0 ? 'ok' : `blocked (curl exit ${r.code})`;
}
const blocked = (s) => s.startsWith('blocked');

/**
 * Unknown applications blocked; the server (and the agents) allowed by
 * rules of the test's own socket, which last always.
 */
async function unknownBlocked() {
  // Slow machines (the debug kernel on a busy host) get more than the default.
  const listen = async (kind, name) => {
    const r = await srv.call('listen', { kind, host: lo4, name }, 120_000);
    assert.ok(r.ok, `listen ${kind}: ${r.err}`);
    return r.port;
  };
  if (!httpPort) {
    httpPort = await listen('http', 'http');
    echoPort = await listen('tcp', 'echo');
  }
  await k.add('allow', 'any', srv.exe);
  await k.set('unkrule', 'block');
}

/** The rule table, by path. */
async function rulesByPath() {
  return new Map((await k.request('rule_list')).map((r) => [r.path, r]));
}

/**
 * A node process holding the daemon's Kernel (daemon/dist/kernel.js): it
 * adds the rules it is given on standard input (one JSON object a line:
 * {prot, path, verdict, timeout?, life?}, names for numbers), answers
 * each with one line, `close` closes its connection, and it lives until
 * killed.
 */
const HOLDER = String.raw`
const path = require('node:path');
const repo = process.argv[2];
const { loadAddon } = require(path.join(repo, 'daemon/dist/addon.js'));
const { Kernel } = require(path.join(repo, 'daemon/dist/kernel.js'));
const { vocabulary } = require(path.join(repo, 'daemon/dist/vocab.js'));
const loaded = loadAddon();
if (loaded.isErr()) { console.error(loaded.error.message); process.exit(1); }
const addon = loaded.value;
const v = vocabulary(addon.schema);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');
Kernel.connect(addon).then((r) => {
  if (r.isErr()) { say({ error: r.error }); process.exit(1); }
  const k = r.value;
  say({ ready: process.pid });
  require('node:readline').createInterface({ input: process.stdin }).on('line', async (line) => {
    if (line === 'close') { k.close(); say({ closed: true }); return; }
    const a = JSON.parse(line);
    const opts = {};
    if (a.timeout !== undefined) opts.timeout = a.timeout;
    if (a.life !== undefined) opts.life = v.life(a.life);
    const res = await k.ruleAdd(v.prot(a.prot), a.path, v.value(a.verdict), opts);
    say(res.isOk() ? { ok: true } : { error: res.error });
  });
});
setInterval(() => {}, 1 << 30);
`;

async function holder() {
  const script = join(W, 'holder.js');
  writeFileSync(script, HOLDER);
  const h = jsonChild(process.execPath, [script, repo]);
  await waitFor(() => h.lines.length > 0 || h.exited, 'the holder to connect', 90_000);
  assert.ok(h.lines[0]?.ready, `holder: ${JSON.stringify(h.lines[0])} ${h.err}`);
  h.ask = async (o) => {
    const n = h.lines.length;
    h.child.stdin.write((typeof o === 'string' ? o : JSON.stringify(o)) + '\n');
    await waitFor(() => h.lines.length > n || h.exited, 'the holder to answer', 30_000);
    return h.lines[n];
  };
  return h;
}

async function killed(c) {
  c.child.kill('SIGKILL');
  await waitFor(() => c.exited, 'the process to die', 10_000);
}

test('until exit: a rule in force while its process lives is gone from the kernel the moment it is killed with SIGKILL; another socket\'s rule stays', async (t) => {
  mark = klogMark();
  await unknownBlocked();
  assert.ok(blocked(curlGets()), 'curl connected with unkrule block and no rule');
  // The test's own socket owns an until-exit rule too: it must survive.
  await k.request('rule_add', { verdict: C.value.allow, prot: C.prot.udp, path: markExe, life: C.life.exit });
  const h = await holder();
  assert.deepEqual(await h.ask({ prot: 'tcp', path: curl, verdict: 'allow', life: 'exit' }), { ok: true });
  const held = (await rulesByPath()).get(curl);
  assert.ok(held, 'the holder\'s rule is not listed');
  assert.equal(curlGets(), 'ok', 'curl refused while the until-exit rule\'s process lives');
  await killed(h);
  const rules = await rulesByPath();
  t.diagnostic(`after kill -9: ${[...rules.keys()].join(' ')}`);
  assert.ok(!rules.has(curl), 'the until-exit rule outlived its process (SIGKILL)');
  assert.ok(blocked(curlGets()), 'curl connected after the rule\'s process was killed');
  assert.equal(rules.get(markExe)?.life, C.life.exit, 'another socket\'s until-exit rule was removed');
  assert.equal(rules.get(srv.exe)?.life, C.life.always, 'an always rule was removed');
  assert.equal(held.life, C.life.exit, `curl's rule while held: ${JSON.stringify(held, bigintJson)}`);
});

/** The client agent's TCP exchange with the echo server: 'ok' or the error. */
async function clientGets() {
  return client.tcp(lo4, echoPort, 'x', 2);
}

test('until exit: closing the connection removes its rules while the process goes on; a timeout with it ends it earlier', async (t) => {
  mark = klogMark();
  await unknownBlocked();
  const h = await holder();
  const T = 8;
  assert.deepEqual(await h.ask({ prot: 'tcp', path: client.exe, verdict: 'allow', life: 'exit', timeout: T }), { ok: true });
  // The kernel has the rule from before the answer: it ends by then + T.
  const added = Date.now();
  assert.equal(await clientGets(), 'ok', 'the client refused under its rule');
  t.diagnostic(`allowed ${Date.now() - added} ms after the add`);
  await sleep(added + T * 1000 + 500 - Date.now());
  assert.ok(!(await rulesByPath()).has(client.exe), `a ${T} s rule of a living process still listed after ${T + 0.5} s`);
  assert.notEqual(await clientGets(), 'ok', `the client connected after its until-exit rule's ${T} s timeout`);
  assert.deepEqual(await h.ask({ prot: 'tcp', path: client.exe, verdict: 'allow', life: 'exit' }), { ok: true });
  assert.equal(await clientGets(), 'ok', 'the client refused under its rule');
  assert.deepEqual(await h.ask('close'), { closed: true });
  assert.ok(!(await rulesByPath()).has(client.exe), 'the until-exit rule outlived its connection');
  assert.notEqual(await clientGets(), 'ok', 'the client connected after its rule\'s connection closed');
  assert.equal(h.exited, null, 'the holder died');
  await killed(h);
});

test('for TIME expires in the kernel; until reboot and always show their life in dumps; a bad life is refused and changes nothing', async (t) => {
  mark = klogMark();
  await unknownBlocked();
  const h = await holder();
  const T = 8;
  assert.deepEqual(await h.ask({ prot: 'tcp', path: client.exe, verdict: 'allow', timeout: T }), { ok: true });
  const added = Date.now();
  assert.equal(await clientGets(), 'ok', `the client refused under its ${T} s rule`);
  t.diagnostic(`allowed ${Date.now() - added} ms after the add`);
  assert.deepEqual(await h.ask({ prot: 'udp', path: markExe, verdict: 'block', life: 'reboot' }), { ok: true });
  assert.deepEqual(await h.ask({ prot: 'udp', path: floodExe, verdict: 'block' }), { ok: true });
  let rules = await rulesByPath();
  const timed = rules.get(client.exe);
  assert.equal(timed?.life, C.life.always);
  assert.ok(timed?.timeout >= 1 && timed?.timeout <= T, `timeout ${timed?.timeout}`);
  assert.equal(rules.get(markExe)?.life, C.life.reboot);
  assert.equal(rules.get(floodExe)?.life, C.life.always);
  await killed(h);
  await sleep(added + T * 1000 + 500 - Date.now());
  assert.notEqual(await clientGets(), 'ok', `the client connected after its ${T} s rule`);
  // Not until exit: these stay when their process is gone.
  rules = await rulesByPath();
  assert.ok(!rules.has(client.exe), `the ${T} s rule is still listed`);
  assert.equal(rules.get(markExe)?.life, C.life.reboot, 'the until-reboot rule went with its process');
  assert.equal(rules.get(floodExe)?.life, C.life.always, 'the always rule went with its process');
  const max = Math.max(...Object.values(C.life));
  await assert.rejects(k.request('rule_add', { verdict: C.value.allow, prot: C.prot.tcp, path: curl, life: max + 1 }),
    (e) => {
      // The policy's range check (NLA_POLICY_RANGE: ERANGE), naming the attribute.
      assert.equal(e.attr, 'life', `${e.code} ${e.message}`);
      return true;
    }, 'a life out of range was accepted');
  assert.ok(!(await rulesByPath()).has(curl), 'a refused rule was added');
});

/**
 * A python process with a netlink socket bound to a port id of our
 * choosing: it adds one rule (RULE_ADD, acked), prints the errno (0 for
 * success), then `close` closes the socket and it waits to be killed.
 */
const OWNER = String.raw`
import json, socket, struct, sys
portid, a = int(sys.argv[1]), json.loads(sys.argv[2])
def attr(t, v):
    return struct.pack('HH', 4 + len(v), t) + v + b'\0' * ((4 - len(v) % 4) % 4)
def attrs(buf):
    i, out = 0, {}
    while i + 4 <= len(buf):
        l, t = struct.unpack_from('HH', buf, i)
        if l < 4:
            break
        out[t & 0x3fff] = buf[i + 4:i + l]
        i += (l + 3) & ~3
    return out
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 16)
s.bind((portid, 0))
# flags: NLM_F_REQUEST (1), with NLM_F_ACK (4) for a command without a reply.
def ask(family, cmd, version, body, flags):
    g = struct.pack('BBH', cmd, version, 0)
    s.send(struct.pack('IHHII', 16 + len(g) + len(body), family, flags, 1, portid) + g + body)
    while True:
        d = s.recv(65536)
        t = struct.unpack_from('H', d, 4)[0]
        if t == 2:
            return -struct.unpack_from('i', d, 16)[0], None
        if t == family:
            return 0, attrs(d[20:struct.unpack_from('I', d)[0]])
e, r = ask(0x10, 3, 1, attr(2, b'vordr\0'), 1)
if e:
    print(json.dumps({'errno': e}), flush=True)
    sys.exit(1)
fam = struct.unpack('H', r[1][:2])[0]
body = (attr(a['prot_id'], bytes([a['prot']])) + attr(a['path_id'], a['path'].encode() + b'\0') +
        attr(a['verdict_id'], bytes([a['verdict']])) + attr(a['life_id'], bytes([a['life']])))
e, _ = ask(fam, a['cmd'], a['version'], body, 5)
print(json.dumps({'errno': e}), flush=True)
for line in sys.stdin:
    if line.strip() == 'close':
        s.close()
        print(json.dumps({'closed': True}), flush=True)
`;

function owner(portid, rule, { netns = false } = {}) {
  const script = join(W, 'owner.py');
  writeFileSync(script, OWNER);
  const a = {
    cmd: schema.commands.rule_add.id, version: schema.family.version,
    prot_id: schema.attrs.prot.id, path_id: schema.attrs.path.id, verdict_id: schema.attrs.verdict.id, life_id: schema.attrs.life.id,
    ...rule,
  };
  const argv = [bin.python, '-S', script, String(portid), JSON.stringify(a)];
  return netns ? jsonChild('unshare', ['-n', ...argv]) : jsonChild(argv[0], argv.slice(1));
}

test('until exit: a rule belongs to its socket\'s network namespace and port id, not to the port id alone', async () => {
  mark = klogMark();
  const portid = 0x7ff00000 + Math.floor(Math.random() * 0xfffff);
  const rule = (path) => ({ prot: C.prot.udp, path, verdict: C.value.block, life: C.life.exit });
  const inNs = owner(portid, rule(markExe), { netns: true });
  const here = owner(portid, rule(floodExe));
  for (const o of [inNs, here]) {
    await waitFor(() => o.lines.length > 0 || o.exited, 'the owner to add its rule', 90_000);
    assert.deepEqual(o.lines[0], { errno: 0 }, `owner: ${o.err}`);
  }
  let rules = await rulesByPath();
  assert.ok(rules.has(markExe) && rules.has(floodExe), 'the owners\' rules are not listed');
  here.child.stdin.write('close\n');
  await waitFor(() => here.lines.length > 1, 'the socket to close', 10_000);
  rules = await rulesByPath();
  assert.ok(!rules.has(floodExe), 'the rule of the closed socket stayed');
  assert.ok(rules.has(markExe), 'the rule of the same port id in another namespace went with it');
  await killed(inNs);
  assert.ok(!(await rulesByPath()).has(markExe), 'the rule of the namespaced socket outlived its process');
  await killed(here);
});
