// How long things last: a listener that fell behind keeps receiving
// events and is told what it lost (SPEC section 4), and the kernel keeps
// temporary rules (SPEC section 2: `for TIME`, `until exit`, `until
// reboot`).  Runs as root in the test VM with vordr.ko loaded, with the
// real daemon (`vordr --service`, `vordr` reading standard input) and the
// real addon; each test leaves the module's defaults and a clean kernel log.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  killAll, track, Agent, C, Kernel, assertKlogClean, bin, cli, copyExe, klogMark, repo, sleep, waitFor, workdir,
} from './util.mjs';

const W = workdir('lifetime');
const lo4 = '127.0.0.1';
let k;
let mark;
const floodExe = copyExe(bin.python, join(W, 'flood', 'py'));
const markExe = copyExe(bin.python, join(W, 'mark', 'py'));
let flood;
let marker;

before(async () => {
  k = await Kernel.open();
  await k.reset();
  [flood, marker] = await Promise.all([floodExe, markExe].map((e) => Agent.start(e)));
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

/** `vordr --service` with a rules file and modprobe.d file of its own. */
function service() {
  return jsonChild(process.execPath, [cli, '--service', '--rules', join(W, 'rules')], {
    cwd: repo, env: { ...process.env, VORDR_MODPROBE_CONF: join(W, 'modprobe.conf') },
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
  const s = service();
  await pokeUntilSeen(s, flood, 0, 'the service before the flood');
  process.kill(s.child.pid, 'SIGSTOP');
  const stoppedAt = Date.now();
  const before = s.lines.length;
  // Far more than a 1 MB receive buffer holds.
  const N = 4000;
  const r = await flood.call('udp', { host: lo4, port: 9, count: N }, 120_000);
  assert.deepEqual(r.errs, { EPERM: N });
  t.diagnostic(`${N} blocked datagrams in ${Date.now() - stoppedAt} ms while the service was stopped`);
  await sleep(Math.max(0, 10_000 - (Date.now() - stoppedAt)));
  process.kill(s.child.pid, 'SIGCONT');
  const seen = await pokeUntilSeen(s, marker, before, 'the service after SIGCONT');
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
