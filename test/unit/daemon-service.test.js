'use strict';
// `vordr --service`'s edges (issue 16 item 4), driven through main() with the
// FAKE addon of daemon/test/fixture.js for the daemon's own logic, and the
// real addon's notify() against a real AF_UNIX datagram socket.  The real
// module (rmmod/insmod, READY=1 with the policy in force) is
// test/vm/service.test.mjs.  Needs `npm run build` first.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { Readable, Writable } = require('node:stream');
const { createInterface } = require('node:readline');
const { ok } = require('neverthrow');
const { fakeAddon, sink, schema, addonBuilt, ROOT } = require('../../daemon/test/fixture.js');
const { main } = require('../../daemon/dist/cli.js');

const S = schema();

// The tests write only in their own directories: never the machine's boot
// policy (a developer's real /var/lib/vordr/policy, or the one CI's package
// test expects absent). Checked after every test of this file.
const { DEFAULT_POLICY_FILE } = require('../../daemon/dist/policy.js');
const statOf = (f) => { try { const st = fs.statSync(f); return `${st.ino} ${st.mtimeMs} ${st.size}`; } catch { return 'absent'; } };
const policyBefore = statOf(DEFAULT_POLICY_FILE);
test.afterEach(() => {
  assert.equal(statOf(DEFAULT_POLICY_FILE), policyBefore, `a test wrote ${DEFAULT_POLICY_FILE}`);
});
const VAL = (n) => S.constants.value[n].value;
const PROT = (n) => S.constants.prot[n].value;
const REASON = (n) => S.constants.reason[n].value;
const DIR = (n) => S.constants.dir[n].value;

const tmpdir = () => fs.mkdtempSync(path.join(os.tmpdir(), 'vordr-service-test-'));
const tick = () => new Promise((r) => setImmediate(r));
async function until(pred, what, ms = 5000) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function event(over = {}) {
  return {
    verdict: VAL('block'), reason: REASON('rule'), dir: DIR('out'), prot: PROT('udp'), af: 2,
    saddr: Buffer.from([127, 0, 0, 1]), daddr: Buffer.from([127, 0, 0, 1]), sport: 41000, dport: 9,
    pid: 4242, uid: 0, path: '/usr/bin/curl', dev: 2049, ino: 77n, count: 0, ...over,
  };
}

function service(argv, { addon = fakeAddon(), dir = tmpdir(), rules = '', stdout = sink(), privileged = true } = {}) {
  fs.writeFileSync(path.join(dir, 'rules'), rules);
  const stderr = sink();
  let stop;
  const stopService = new Promise((r) => (stop = r));
  const done = main({
    argv: ['--service', ...argv], stdin: Object.assign(Readable.from([]), { isTTY: false }), stdout, stderr,
    loadAddon: () => ok(addon), cwd: dir,
    rulesFile: path.join(dir, 'rules'), policyFile: path.join(dir, 'policy'),
    privileged, stopService,
  });
  return { addon, stdout, stderr, stop, done, dir };
}

test('standard output closed (EPIPE): --service stops by itself and exits 0 without a word', async () => {
  // A pipe whose reader went away, as after `vordr --service | head -1`.
  const stdout = new Writable({
    write(_chunk, _enc, cb) {
      cb(Object.assign(new Error('write EPIPE'), { code: 'EPIPE', errno: -32, syscall: 'write' }));
    },
  });
  const s = service([], { stdout, rules: 'block udp /usr/bin/curl\n' });
  await until(() => s.addon.subscribed, 'the subscription');
  s.addon.emit(event());
  s.addon.emit(event());
  const code = await Promise.race([s.done, new Promise((r) => setTimeout(() => r('still running'), 3000))]);
  assert.equal(code, 0);
  assert.equal(s.stderr.text, '', 'nothing on standard error');
  assert.equal(s.addon.subscribed, false, 'unsubscribed');
  assert.equal(s.addon.watched, false, 'the watch is closed');
});

test('READY=1 goes to the service manager only after every saved rule and --set is in force', async () => {
  const s = service(['--set', 'unkrule=block'], { rules: 'block udp /usr/bin/curl\nallow tcp /usr/bin/wget\n' });
  await until(() => s.addon.notified.some((n) => n.state.startsWith('READY=1')), 'READY=1');
  const ready = s.addon.notified.find((n) => n.state.startsWith('READY=1'));
  const before = s.addon.calls.slice(0, ready.calls).map((c) => c.command);
  assert.equal(before.filter((c) => c === 'rule_add').length, 2, `both rules before READY=1: ${before}`);
  assert.ok(before.includes('flag_set'), '--set before READY=1');
  assert.ok(s.addon.subscribed, 'subscribed when ready');
  assert.match(ready.state, /^READY=1\nSTATUS=.*policy is in force/);
  assert.match(s.addon.notified[0].state, /^STATUS=applying/);
  s.stop();
  assert.equal(await s.done, 0);
  assert.ok(s.addon.notified.some((n) => n.state === 'STOPPING=1'));
});

test('the module unloaded: one line at once, no exit; loaded again: the policy again, events again, one line', async () => {
  const s = service([], { rules: 'block udp /usr/bin/curl\n' });
  await until(() => s.addon.subscribed, 'the subscription');
  s.addon.emit(event());
  assert.equal(s.addon.rules.size, 1);

  s.addon.unload();
  await tick();
  assert.match(s.stderr.text, /^vordr: the kernel module was unloaded: no policy is in force; waiting for it to be loaded again\n$/);
  assert.match(s.addon.notified.at(-1).state, /^STATUS=waiting for the kernel module/);
  const still = await Promise.race([s.done.then(() => 'exited'), new Promise((r) => setTimeout(() => r('running'), 200))]);
  assert.equal(still, 'running');

  const errAt = s.stderr.text.length;
  s.addon.load();
  await until(() => s.addon.subscribed, 'the subscription again');
  assert.deepEqual([...s.addon.rules.values()].map((r) => [r.verdict, r.prot, r.path]), [[VAL('block'), PROT('udp'), '/usr/bin/curl']],
    'the saved policy is in force again');
  assert.equal(s.stderr.text.slice(errAt), 'vordr: the kernel module is back: the saved policy is in force again and events are logged again\n');
  assert.match(s.addon.notified.at(-1).state, /^STATUS=the saved policy is in force again/);
  assert.equal(s.addon.notified.filter((n) => n.state.startsWith('READY=1')).length, 1, 'READY=1 once');
  s.addon.emit(event({ path: '/usr/bin/after' }));
  s.stop();
  assert.equal(await s.done, 0);
  const paths = s.stdout.text.trimEnd().split('\n').map((l) => JSON.parse(l).path);
  assert.deepEqual(paths, ['/usr/bin/curl', '/usr/bin/after']);
});

test('an unanswered pending prompt: after --prompt-timeout the service blocks it once and logs one JSON line', async () => {
  const s = service(['--set', 'unkrule=pending', '--prompt-timeout', '1']);
  await until(() => s.addon.subscribed, 'the subscription');
  s.addon.emit(event({ verdict: VAL('pending'), reason: REASON('norule'), path: '/opt/app/x' }));
  s.addon.emit(event({ verdict: VAL('pending'), reason: REASON('norule'), path: '/opt/app/x', prot: PROT('tcp') }));
  await until(() => s.addon.rules.size === 2, 'the decision', 5000);
  const rules = [...s.addon.rules.values()].sort((a, b) => a.prot - b.prot);
  for (const r of rules) {
    assert.equal(r.verdict, VAL('block'));
    assert.equal(r.path, '/opt/app/x');
    assert.ok(r.timeout > 0, 'a rule the kernel removes by itself');
  }
  s.stop();
  assert.equal(await s.done, 0);
  const lines = s.stdout.text.trimEnd().split('\n').map((l) => JSON.parse(l));
  const d = lines.filter((l) => l.prompt !== undefined);
  assert.equal(d.length, 1, 'one line for the decision');
  assert.equal(d[0].prompt, 'unanswered');
  assert.equal(d[0].after, 1);
  assert.equal(d[0].path, '/opt/app/x');
  assert.deepEqual(d[0].prot.sort(), ['tcp', 'udp']);
  assert.equal(d[0].verdict, 'block');
  assert.equal(d[0].seconds, rules[0].timeout);
  assert.doesNotMatch(fs.readFileSync(path.join(s.dir, 'rules'), 'utf8'), /opt/, 'nothing of it is saved');
});

test('an unprivileged --service decides no prompt (it could not add the rule)', async () => {
  const s = service(['--prompt-timeout', '1'], { privileged: false });
  await until(() => s.addon.subscribed, 'the subscription');
  s.addon.emit(event({ verdict: VAL('pending'), reason: REASON('norule'), path: '/opt/app/x' }));
  await new Promise((r) => setTimeout(r, 1300));
  assert.equal(s.addon.rules.size, 0);
  s.stop();
  assert.equal(await s.done, 0);
});

// ---------------------------------------------------------------- the real addon's notify()

const skipNoAddon = addonBuilt() ? false : 'the addon is not built';

function notifyChild(env, state) {
  return spawnSync(process.execPath, ['-e', `
    const a = require(${JSON.stringify(path.join(ROOT, 'addon'))});
    try { console.log(JSON.stringify(a.notify(${JSON.stringify(state)}))); }
    catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }`],
  { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8' });
}

test('notify() without NOTIFY_SOCKET is a no-op that returns false', { skip: skipNoAddon }, () => {
  const r = notifyChild({}, 'READY=1');
  assert.equal(r.stdout.trim(), 'false', r.stderr);
});

test('notify() sends its state to NOTIFY_SOCKET (an AF_UNIX datagram socket) and returns true', { skip: skipNoAddon || (!fs.existsSync('/usr/bin/python3') && 'no python3') }, async () => {
  const dir = tmpdir();
  const sock = path.join(dir, 'notify');
  const py = spawn('/usr/bin/python3', ['-c', [
    'import socket, sys',
    's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
    's.bind(sys.argv[1])',
    "print('listening', flush=True)",
    'print(repr(s.recv(4096).decode()), flush=True)',
  ].join('\n'), sock], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = [];
  createInterface({ input: py.stdout }).on('line', (l) => lines.push(l));
  try {
    await until(() => lines.includes('listening'), 'the listener', 10000);
    const r = notifyChild({ NOTIFY_SOCKET: sock }, 'READY=1\nSTATUS=the saved policy is in force');
    assert.equal(r.stdout.trim(), 'true', r.stderr);
    await until(() => lines.length === 2, 'the datagram', 10000);
    assert.equal(lines[1], "'READY=1\\nSTATUS=the saved policy is in force'");
  } finally {
    py.kill();
  }
});

test('notify() to a NOTIFY_SOCKET nobody listens on throws an errno error; a non-string is a TypeError', { skip: skipNoAddon }, () => {
  const r = notifyChild({ NOTIFY_SOCKET: path.join(tmpdir(), 'nobody') }, 'READY=1');
  const e = JSON.parse(r.stdout.trim());
  assert.match(e.code, /^E[A-Z]+$/, r.stdout);
  assert.match(e.message, /^sd_notify: /);
  const addon = require(path.join(ROOT, 'addon'));
  assert.throws(() => addon.notify(1), TypeError);
});

test('watch() opens the generic netlink controller\'s notify group, with or without the module', { skip: skipNoAddon }, async () => {
  const addon = require(path.join(ROOT, 'addon'));
  const c = await addon.watch(() => {});
  try {
    assert.equal(typeof c.groupId, 'number', 'the controller has its notify group');
    assert.equal(c.closed, false);
  } finally {
    c.close();
  }
  assert.equal(c.closed, true);
  await assert.rejects(() => addon.watch('no'), TypeError);
});
