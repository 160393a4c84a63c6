// `vordr --service`'s edges (issue 16 item 4): standard output closed,
// SIGTERM and SIGINT, the module unloaded and loaded again while it runs,
// its readiness (sd_notify READY=1 only once the saved policy is in the
// kernel) and a pending prompt nobody answers.  Runs as root in the test VM
// with vordr.ko loaded, with the real daemon (daemon/dist/cli.js), the real
// addon and a real AF_UNIX datagram socket as NOTIFY_SOCKET (python3).
//
// vm-flavors: stock (test/vm/run.sh: not run on the debug kernel in CI:
// the service's edges (EPIPE, signals, sd_notify, reopening after
// rmmod): daemon code; unloading under a listener runs on the debug kernel
// in engine.test.mjs and security.test.mjs.)
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  killAll, track, Agent, Kernel, assertKlogClean, bin, cli, copyExe, insmod, klogMark, loaded, repo, rmmod, sleep,
  waitFor, workdir,
} from './util.mjs';

const W = workdir('service');
const lo4 = '127.0.0.1';
let k;
let mark;
const pokeExe = copyExe(bin.python, join(W, 'poke', 'py'));
const askExe = copyExe(bin.python, join(W, 'ask', 'py'));
let poke;
let ask;

before(async () => {
  k = await Kernel.open();
  await k.reset();
  [poke, ask] = await Promise.all([pokeExe, askExe].map((e) => Agent.start(e)));
});

after(async () => {
  killAll();
  if (!loaded()) insmod();
  k?.close();
  const k2 = await Kernel.open();
  try { await k2.reset(); } finally { k2.close(); }
});

afterEach(async () => {
  if (!loaded()) assert.equal(insmod().code, 0, 'insmod after a test');
  k.close();
  k = await Kernel.open();
  await k.reset();
  assertKlogClean(mark);
});

/**
 * `vordr --service` with its own rules file: lines parsed from standard
 * output, standard error kept, the exit recorded.
 */
function service(rules, { args = [], env = {} } = {}) {
  const file = join(W, `rules-${Math.random().toString(36).slice(2)}`);
  writeFileSync(file, rules.map((l) => `${l}\n`).join(''));
  const child = track(spawn(process.execPath, [cli, '--service', '--rules', file, ...args], {
    cwd: repo, stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, VORDR_MODPROBE_CONF: join(W, 'modprobe.conf'), ...env },
  }));
  const s = { child, lines: [], err: '', exited: null, file };
  s.exit = new Promise((r) => child.on('exit', (code, signal) => { s.exited = { code, signal }; r(s.exited); }));
  child.stderr.setEncoding('utf8').on('data', (d) => { s.err += d; });
  createInterface({ input: child.stdout }).on('line', (l) => {
    try { s.lines.push(JSON.parse(l)); } catch { s.lines.push({ raw: l }); }
  });
  return s;
}

/** Until the kernel holds the block rule for `exe` (the service applied its rules file). */
async function ruleIn(exe, what, ms = 60_000) {
  await waitFor(async () => (await k.rules()).some((r) => r.path === exe && r.verdict === 'block'), what, ms);
}

/** Pokes (blocked UDP datagrams from `agent`) until `s` printed an event of it after line `from`. */
async function pokeUntilSeen(s, agent, from, what, ms = 60_000) {
  const t0 = Date.now();
  await ruleIn(agent.exe, `${what}: the block rule`, ms);
  for (;;) {
    const i = s.lines.findIndex((l, n) => n >= from && l.path === agent.exe);
    if (i >= 0) return i;
    if (Date.now() - t0 > ms || s.exited)
      assert.fail(`${what}: no event of ${agent.exe} within ${ms} ms (${s.lines.length} lines; exited ` +
        `${JSON.stringify(s.exited)}; stderr: ${s.err.slice(-500)})`);
    assert.equal(await agent.udp(lo4, 9, 'poke'), 'EPERM', `${what}: the datagram is blocked`);
    await sleep(300);
  }
}

/** A listening AF_UNIX datagram socket: every assignment it receives, in order. */
async function notifySocket() {
  const path = join(W, `notify-${Math.random().toString(36).slice(2)}`);
  const py = [
    'import socket, sys',
    's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    's.bind(sys.argv[1])',
    "print('listening', flush=True)",
    'while True:',
    '    for l in s.recv(65536).decode().split("\\n"):',
    '        if l: print(l, flush=True)',
  ].join('\n');
  const child = track(spawn(bin.python, ['-S', '-u', '-c', py, path], { stdio: ['ignore', 'pipe', 'pipe'] }));
  const n = { path, child, got: [], listeners: new Set(), err: '' };
  child.stderr.setEncoding('utf8').on('data', (d) => { n.err += d; });
  createInterface({ input: child.stdout }).on('line', (l) => {
    n.got.push(l);
    for (const f of n.listeners) f(l);
  });
  await waitFor(() => n.got.includes('listening') || n.err.length > 0 || child.exitCode !== null,
    'the notify socket', 60_000);
  assert.ok(n.got.includes('listening'), `the notify socket listens: ${n.err} (exit ${child.exitCode})`);
  return n;
}

function noStackTrace(err, what) {
  assert.doesNotMatch(err, /^\s+at /m, `${what}: no stack trace on stderr: ${err}`);
  assert.doesNotMatch(err, /EPIPE|Error:/, `${what}: no error on stderr: ${err}`);
}

test('standard output closed (vordr --service | head -1): the service exits 0, quietly', async () => {
  mark = klogMark();
  const s = service([`block udp ${pokeExe}`]);
  await pokeUntilSeen(s, poke, 0, 'the first event');
  // What head does after its line: the pipe's read end is closed.
  s.child.stdout.destroy();
  const t0 = Date.now();
  while (!s.exited && Date.now() - t0 < 30_000) {
    assert.equal(await poke.udp(lo4, 9, 'poke'), 'EPERM');
    await sleep(200);
  }
  assert.deepEqual(s.exited, { code: 0, signal: null }, `exit after its standard output closed; stderr: ${s.err}`);
  noStackTrace(s.err, 'closed standard output');
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  test(`${sig}: the service exits 0, quietly`, async () => {
    mark = klogMark();
    const s = service([`block udp ${pokeExe}`]);
    await pokeUntilSeen(s, poke, 0, 'the first event');
    s.child.kill(sig);
    const x = await Promise.race([s.exit, sleep(20_000).then(() => 'timeout')]);
    assert.deepEqual(x, { code: 0, signal: null }, `${sig}; stderr: ${s.err}`);
    noStackTrace(s.err, sig);
  });
}

test('READY=1 reaches NOTIFY_SOCKET only once the saved policy is in the kernel', async (t) => {
  mark = klogMark();
  // Many rules, so applying them takes a while: a READY=1 sent before they
  // are all in would find the last one missing.
  const many = Array.from({ length: 400 }, (_, i) => `block tcp /opt/vordr-service-test/app-${i}`);
  const n = await notifySocket();
  let atReady;
  n.listeners.add((l) => {
    // At once, before anything else runs: what the kernel holds now.
    if (l === 'READY=1' && !atReady) atReady = k.rules();
  });
  const t0 = Date.now();
  const s = service([...many, `block udp ${pokeExe}`], { env: { NOTIFY_SOCKET: n.path } });
  await waitFor(() => atReady || s.exited, 'READY=1', 300_000);
  assert.ok(atReady, `READY=1 before the service exited (${JSON.stringify(s.exited)}); got ${JSON.stringify(n.got)}; stderr ${s.err}`);
  const rulesAtReady = await atReady;
  t.diagnostic(`READY=1 after ${Date.now() - t0} ms; notify socket got ${JSON.stringify(n.got.slice(0, 6))}`);
  assert.ok(rulesAtReady.some((r) => r.path === pokeExe && r.verdict === 'block' && r.prot === 'udp'),
    `the rules file's last rule is in the kernel when READY=1 arrives (${rulesAtReady.length} rules)`);
  assert.equal(rulesAtReady.length, many.length + 1, 'every saved rule is in the kernel when READY=1 arrives');
  assert.equal(n.got.filter((l) => l === 'READY=1').length, 1, 'READY=1 once');
  assert.ok(n.got.some((l) => /^STATUS=.*polic/i.test(l)), `a STATUS line says the policy is in force: ${JSON.stringify(n.got)}`);
  await pokeUntilSeen(s, poke, 0, 'an event once ready');
  s.child.kill('SIGTERM');
  assert.deepEqual(await s.exit, { code: 0, signal: null });
  noStackTrace(s.err, 'READY=1');
});

test('rmmod and insmod while the service runs: it says so at once, waits, re-applies the saved policy and logs events again', async (t) => {
  mark = klogMark();
  const many = Array.from({ length: 100 }, (_, i) => `block tcp /opt/vordr-service-test/app-${i}`);
  const n = await notifySocket();
  const s = service([...many, `block udp ${pokeExe}`], { env: { NOTIFY_SOCKET: n.path } });
  await pokeUntilSeen(s, poke, 0, 'an event before rmmod');

  // The module goes away: noticed at once, one line on stderr, no exit.
  const errBefore = s.err.length;
  k.close();
  const r = rmmod();
  assert.equal(r.code, 0, `rmmod: ${r.err}`);
  const gone = Date.now();
  await waitFor(() => /module .*(unloaded|gone)/i.test(s.err.slice(errBefore)), 'the notice that the module went away', 5000);
  t.diagnostic(`noticed in ${Date.now() - gone} ms: ${s.err.slice(errBefore).trim()}`);
  assert.equal(s.err.slice(errBefore).trim().split('\n').length, 1, `one line: ${s.err.slice(errBefore)}`);
  await waitFor(() => n.got.some((l) => /^STATUS=.*wait/i.test(l)), 'a STATUS line while waiting for the module', 5000);
  await sleep(2000);
  assert.equal(s.exited, null, 'the service keeps running without the module');

  // It comes back: the policy is in force again and events are logged.
  const from = s.lines.length;
  const errMid = s.err.length;
  assert.equal(insmod().code, 0, 'insmod');
  const back = Date.now();
  k = await Kernel.open();
  await waitFor(async () => (await k.rules()).some((x) => x.path === pokeExe && x.verdict === 'block'), 'the saved rule in force again', 30_000);
  t.diagnostic(`policy back in ${Date.now() - back} ms`);
  await waitFor(() => /module .*back/i.test(s.err.slice(errMid)), 'the notice that the module is back', 30_000);
  await pokeUntilSeen(s, poke, from, 'an event after the module came back', 30_000);
  t.diagnostic(`event logged ${Date.now() - back} ms after insmod; stderr: ${s.err.slice(errMid).trim()}`);
  assert.equal((await k.rules()).length, many.length + 1, 'the whole saved policy is in force again');
  assert.equal(n.got.filter((l) => l === 'READY=1').length, 1, 'READY=1 still once');
  assert.equal(s.exited, null, 'no exit, so no restart');
  noStackTrace(s.err, 'rmmod and insmod');

  s.child.kill('SIGTERM');
  assert.deepEqual(await s.exit, { code: 0, signal: null });
});

test('a pending prompt with no console: after the prompt timeout the service blocks it once, and logs that as one JSON line', async () => {
  mark = klogMark();
  const s = service([], { args: ['--set', 'unkrule=pending', '--prompt-timeout', '2'] });
  await waitFor(async () => (await k.flagName('unkrule')) === 'pending', 'unkrule pending', 30_000);
  // The application's attempts: dropped while pending, each an event.
  let decided;
  const t0 = Date.now();
  while (!decided && Date.now() - t0 < 60_000) {
    assert.equal(await ask.udp(lo4, 9, 'ask'), 'EPERM');
    decided = s.lines.find((l) => l.prompt !== undefined);
    await sleep(300);
  }
  assert.ok(decided, `a decision line; lines: ${JSON.stringify(s.lines.slice(-5))} stderr: ${s.err}`);
  assert.ok(s.lines.some((l) => l.verdict === 'pending' && l.path === askExe), 'the pending event was logged');
  assert.equal(decided.path, askExe);
  assert.equal(decided.verdict, 'block');
  assert.deepEqual(decided.prot, ['udp']);
  assert.equal(decided.prompt, 'unanswered');
  assert.equal(typeof decided.seconds, 'number');
  const rule = (await k.rules()).find((x) => x.path === askExe);
  assert.ok(rule, 'the decision is a rule in the kernel');
  assert.equal(rule.verdict, 'block');
  assert.equal(rule.prot, 'udp');
  assert.ok(rule.timeout > 0 && rule.timeout <= decided.seconds, `a rule that expires by itself (timeout ${rule.timeout})`);
  s.child.kill('SIGTERM');
  assert.deepEqual(await s.exit, { code: 0, signal: null });
  noStackTrace(s.err, 'the pending prompt');
});
