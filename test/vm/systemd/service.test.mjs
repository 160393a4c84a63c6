// vordr.service under a real systemd (PID 1 of the VM, test/vm/systemd.sh).
// Runs from vordr-test.service, after a cold boot whose saved policy
// (policy.mjs, VORDR_SYSD_RULES rules) stage.sh installed before systemd
// started. The tests run in order: the cold-boot ones first, then the ones
// that restart the service and reload the module.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { Agent, Kernel, bin, killAll, run, sleep, waitFor } from '../util.mjs';
import { ALLOWED, BLOCKED, policyRules } from './policy.mjs';

const UNIT = 'vordr.service';
const out = '/mnt/out';
const count = Number(process.env.VORDR_SYSD_RULES ?? 6);
let server;
let blocked;
let allowed;
let port;

function show(prop) {
  const r = run('systemctl', ['show', '-p', prop, '--value', UNIT]);
  assert.equal(r.code, 0, `systemctl show -p ${prop}: ${r.err}`);
  return r.out.trim();
}

const restarts = () => Number(show('NRestarts'));

function systemctl(...args) {
  const r = run('systemctl', args, { timeout: 120_000 });
  assert.equal(r.code, 0, `systemctl ${args.join(' ')}: ${r.out}${r.err}`);
}

async function waitActive(ms = 60_000) {
  await waitFor(() => show('ActiveState') === 'active', `${UNIT} active (now ${show('ActiveState')}/${show('SubState')})`, ms);
}

/** The blocked application is refused and the allowed one connects. */
async function enforced() {
  const b = await blocked.tcp('127.0.0.1', port, 'b', 2);
  const a = await allowed.tcp('127.0.0.1', port, 'a', 2);
  return b !== 'ok' && a === 'ok' ? { b, a } : false;
}

/** After `what`: the policy in force within seconds, the unit active, no restart counted, then or 5 s later. */
async function policyBack(t, what, restartsBefore) {
  const t0 = Date.now();
  const r = await waitFor(enforced, `the saved policy in force again after ${what}`, 20_000);
  t.diagnostic(`${what}: blocked application refused (${r.b}), allowed one connected, ${Date.now() - t0} ms after`);
  await waitActive(20_000);
  assert.equal(restarts(), restartsBefore, `NRestarts after ${what}`);
  await sleep(5000);
  assert.equal(show('ActiveState'), 'active', `${UNIT} still active 5 s after ${what}`);
  assert.equal(restarts(), restartsBefore, `NRestarts 5 s after ${what} (a restart loop?)`);
  assert.ok(await enforced(), `the policy still in force 5 s after ${what}`);
}

before(async () => {
  server = await Agent.start(bin.python);
  port = await server.listen('tcp', '127.0.0.1', 'srv');
  blocked = await Agent.start(BLOCKED);
  allowed = await Agent.start(ALLOWED);
});

after(() => {
  killAll();
});

test('cold boot: the blocked application\'s first connection after boot is refused', (t) => {
  const f = '/run/vordr-test/early.json';
  assert.ok(existsSync(f), `${f} (vordr-test-early.service) exists`);
  const e = JSON.parse(readFileSync(f, 'utf8'));
  t.diagnostic(`early probe: ${JSON.stringify(e)}`);
  assert.equal(e.module_loaded, 'yes', 'the module was loaded by the boot (modules-load.d) before the probe');
  assert.notEqual(e.service_at_probe, 'active', `the probe ran before ${UNIT} was active`);
  assert.ok(e.port > 0, 'the probe\'s server listened');
  assert.notEqual(e.blocked, 'ok', `the blocked application's first connection (${e.blocked})`);
});

test(`${UNIT} is enabled and reaches active after boot`, async (t) => {
  await waitActive();
  t.diagnostic(`ActiveState=${show('ActiveState')} SubState=${show('SubState')} MainPID=${show('MainPID')} NRestarts=${show('NRestarts')}`);
  const r = run('systemctl', ['is-enabled', UNIT]);
  assert.equal(r.out.trim(), 'enabled', `systemctl is-enabled ${UNIT}`);
});

test('an allowed application connects once the unit is active; the blocked one is refused', async () => {
  await waitActive();
  assert.equal(await allowed.tcp('127.0.0.1', port, 'first', 3), 'ok', 'the allowed application\'s first connection');
  assert.notEqual(await blocked.tcp('127.0.0.1', port, 'x', 2), 'ok', 'the blocked application');
});

test(`the kernel holds all ${count} saved rules`, async () => {
  const k = await Kernel.open();
  try {
    const have = new Set((await k.rules()).map((r) => `${r.verdict} ${r.prot} ${r.path}`));
    const missing = policyRules(count).map((r) => `${r.verdict} ${r.prot} ${r.path}`).filter((r) => !have.has(r));
    assert.deepEqual(missing, [], `saved rules not in the kernel (of ${have.size} there)`);
  } finally {
    k.close();
  }
});

test(`${UNIT} is ordered before network-pre.target`, () => {
  const before = show('Before').split(/\s+/);
  assert.ok(before.includes('network-pre.target'),
    `Before= of ${UNIT} is '${before.join(' ')}' (the unit needs Before=network-pre.target)`);
});

test(`${UNIT} pulls in network-pre.target (Wants=)`, () => {
  const wants = show('Wants').split(/\s+/);
  assert.ok(wants.includes('network-pre.target'),
    `Wants= of ${UNIT} is '${wants.join(' ')}' (the unit needs Wants=network-pre.target)`);
});

test('journalctl -u vordr shows what the service logged (the blocked connection)', async (t) => {
  await waitActive();
  assert.notEqual(await blocked.tcp('127.0.0.1', port, 'logged', 2), 'ok');
  const line = await waitFor(() => {
    const r = run('journalctl', ['-u', UNIT, '-b', '-o', 'cat', '--no-pager']);
    return r.out.split('\n').find((l) => l.includes(`"path":"${BLOCKED}"`));
  }, `an event of ${BLOCKED} in journalctl -u vordr`, 15_000);
  t.diagnostic(`journal: ${line}`);
  const ev = JSON.parse(line);
  assert.equal(ev.verdict, 'block');
});

test(`systemctl restart vordr: the policy holds, NRestarts unchanged`, async (t) => {
  const n = restarts();
  const pid = show('MainPID');
  systemctl('restart', UNIT);
  await waitActive();
  assert.notEqual(show('MainPID'), pid, 'a new main process');
  await policyBack(t, 'systemctl restart', n);
});

test(`systemctl stop vordr, then start: the policy holds, NRestarts unchanged`, async (t) => {
  const n = restarts();
  systemctl('stop', UNIT);
  assert.equal(show('ActiveState'), 'inactive', 'stopped');
  systemctl('start', UNIT);
  await waitActive();
  await policyBack(t, 'systemctl stop + start', n);
});

test('rmmod vordr, then modprobe vordr, while the service runs: the policy comes back, NRestarts unchanged', async (t) => {
  await waitActive();
  const n = restarts();
  const pid = show('MainPID');
  const rm = run('rmmod', ['vordr']);
  assert.equal(rm.code, 0, `rmmod vordr: ${rm.err}`);
  await sleep(1000);
  const mp = run('modprobe', ['vordr']);
  assert.equal(mp.code, 0, `modprobe vordr: ${mp.err}`);
  await policyBack(t, 'rmmod + modprobe', n);
  t.diagnostic(`MainPID ${pid} before, ${show('MainPID')} after`);
  const j = run('journalctl', ['-u', UNIT, '-b', '-o', 'cat', '--no-pager', '-n', '20']);
  t.diagnostic(`journal tail: ${j.out.trim().split('\n').slice(-5).join(' | ')}`);
});

test('systemd-analyze security vordr.service prints an exposure level', (t) => {
  const r = run('systemd-analyze', ['security', '--no-pager', UNIT], { timeout: 120_000 });
  writeFileSync(`${out}/security.txt`, r.out + r.err);
  const m = /Overall exposure level for vordr\.service:\s*([\d.]+)\s+(\S+)/.exec(r.out);
  assert.ok(m, `an exposure level in: ${r.out.slice(-400)}${r.err}`);
  t.diagnostic(`exposure level: ${m[1]} ${m[2]}`);
  writeFileSync(`${out}/exposure.txt`, `${m[1]} ${m[2]}\n`);
});
