// Finding a socket's owner: a new UDP server's first datagrams wait for
// it (held, then delivered or dropped by the server's own rule), and the
// search cannot be outrun by another user's descriptors. Runs as root in
// the test VM with vordr.ko loaded; every test ends with the module's
// defaults and a clean kernel log.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  Agent, Kernel, assertKlogClean, schema, bin, copyExe, killAll, klogMark, sleep, track, workdir,
} from './util.mjs';

const W = workdir('owner');
const lo = { 4: '127.0.0.1', 6: '::1' };
const srvExe = copyExe(bin.python, join(W, 'srv', 'py'));
const cliExe = copyExe(bin.python, join(W, 'cli', 'py'));
const other = 2345;     // the server's user in the descriptor test
const hogUid = 2346;    // the user who holds the descriptors

let k;
let cli;
let mark;

before(async () => {
  k = await Kernel.open();
  await k.reset();
  cli = await Agent.start(cliExe);
});

afterEach(async () => {
  await k.reset();
  assertKlogClean(mark);
});

after(async () => {
  killAll();
  await k?.reset();
  k?.close();
});

/** What server `name` of agent `who` has received so far, after waiting ms. */
async function seenAfter(who, name, ms) {
  await sleep(ms);
  return who.seen(name);
}

/** Polls until server `name` got anything, or ms pass: what it got. */
async function firstSeen(who, name, ms) {
  const end = Date.now() + ms;
  for (;;) {
    const got = await who.seen(name);
    if (got.length || Date.now() > end) return got;
    await sleep(100);
  }
}

let serial = 0;
/** A fresh UDP socket (it never sends) in a fresh server agent: [agent, name, port]. */
async function freshServer(f, opts) {
  const a = await Agent.start(srvExe, opts);
  const name = `u${f}-${serial++}`;
  return [a, name, await a.listen('udp', lo[f], name)];
}

for (const f of [4, 6]) {
  test(`IPv${f}: a new UDP server blocked by its rule receives none of its first datagrams (default flags)`, async () => {
    mark = klogMark();
    await k.add('block', 'udp', srvExe);
    const held0 = await heldCount();
    const [srv, name, port] = await freshServer(f);
    // A burst, before the module can have found the server's owner.
    const r = await cli.call('udp', { host: lo[f], port, data: 'first', count: 8 });
    assert.ok(r.ok, `the client could not send: ${r.err}`);
    assert.deepEqual(await seenAfter(srv, name, 1500), [],
      'datagrams reached a new server whose rule blocks udp');
    assert.ok(held0 >= 0 && (await heldCount()) > held0, 'no datagram was counted in held');
    srv.kill();
  });

  test(`IPv${f}: a new allowed UDP server receives the very first datagram (unkproc block)`, async () => {
    mark = klogMark();
    await k.set('unkrule', 'block');
    await k.set('unkproc', 'block');
    await k.add('allow', 'udp', cliExe);
    await k.add('allow', 'udp', srvExe);
    const [srv, name, port] = await freshServer(f);
    assert.equal(await cli.udp(lo[f], port, 'only'), 'ok');
    assert.deepEqual(await firstSeen(srv, name, 3000), ['only'],
      'the first datagram to a new allowed server was lost');
    srv.kill();
  });
}

/** The module's count of held datagrams (-1: a module without one). */
async function heldCount() {
  return schema.flags.held ? k.flag('held') : -1;
}

// ---- the owner search and another user's descriptors --------------------------

// The walk used to stop after 2^18 descriptors: this many, all held by
// one unprivileged user in a process older than the server, hid every
// later socket from it.
const HOG_FDS = (1 << 18) + 8192;

/** A process of user hogUid holding HOG_FDS descriptors; resolves when it does. */
async function hog() {
  const script = 'import os, sys, time\n' +
    'fd = os.open("/dev/null", os.O_RDONLY)\n' +
    `for _ in range(${HOG_FDS}): os.dup(fd)\n` +
    'print("ready", flush=True)\n' +
    'time.sleep(100000)\n';
  const child = track(spawn('prlimit', [`--nofile=${HOG_FDS + 64}:${HOG_FDS + 64}`, 'setpriv',
    `--reuid=${hogUid}`, `--regid=${hogUid}`, '--clear-groups', '--inh-caps=-all',
    bin.python, '-S', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d) => { err += d; });
  const rl = createInterface({ input: child.stdout });
  await new Promise((resolve, reject) => {
    rl.on('line', (l) => { if (l === 'ready') resolve(); });
    child.on('exit', (code) => reject(new Error(`descriptor hog exited (${code}): ${err}`)));
  });
  return child;
}

/** Sends a datagram every 200 ms for ms; resolves with what the server got. */
async function trickle(srv, name, port, f, ms) {
  const end = Date.now() + ms;
  let i = 0;
  for (;;) {
    assert.equal(await cli.udp(lo[f], port, `t${i++}`), 'ok');
    const got = await srv.seen(name);
    if (got.length || Date.now() > end) return got;
    await sleep(200);
  }
}

let hogProc;
/** The descriptor hog, started once, before the servers of the tests below. */
async function hogged() {
  hogProc ??= await hog();
  return hogProc;
}

test('another user\'s descriptors do not hide a new allowed UDP server from the owner search (unkproc block)', async (t) => {
  mark = klogMark();
  await hogged();
  // Allowed server, everything unknown blocked: it must be found.
  await k.set('unkrule', 'block');
  await k.set('unkproc', 'block');
  await k.add('allow', 'udp', cliExe);
  await k.add('allow', 'udp', srvExe);
  const [a, an, ap] = await freshServer(4, { uid: other });
  const got = await trickle(a, an, ap, 4, 4000);
  t.diagnostic(`allowed server got ${got.length} datagrams`);
  assert.ok(got.length > 0, 'an allowed server behind another user\'s descriptors received nothing');
  a.kill();
});

test('another user\'s descriptors do not hide a new blocked UDP server from the owner search (unkproc allow)', async () => {
  mark = klogMark();
  await hogged();
  await k.add('block', 'udp', srvExe);
  const [b, bn, bp] = await freshServer(4, { uid: other });
  const r = await cli.call('udp', { host: lo[4], port: bp, data: 'b', count: 4 });
  assert.ok(r.ok, r.err);
  await sleep(1500);
  for (let i = 0; i < 4; i++) assert.equal(await cli.udp(lo[4], bp, `late${i}`), 'ok');
  assert.deepEqual(await seenAfter(b, bn, 700), [],
    'a blocked server behind another user\'s descriptors received datagrams');
  b.kill();
  hogProc.kill('SIGKILL');
});
