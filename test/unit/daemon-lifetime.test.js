'use strict';
// The daemon's side of issue 12's items 1 and 2: a loss of events is one
// JSON line of --service, in order with the events; a rule's life goes to
// the kernel by the schema's value and comes back from dumps.  Driven
// through main() and Kernel with the FAKE addon (daemon/test/fixture.js);
// the real module and addon are tested in test/vm/lifetime.test.mjs.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Readable } = require('node:stream');
const { ok } = require('neverthrow');
const { fakeAddon, sink, schema } = require('../../daemon/test/fixture.js');
const { main } = require('../../daemon/dist/cli.js');
const { Kernel } = require('../../daemon/dist/kernel.js');
const { vocabulary } = require('../../daemon/dist/vocab.js');
const { decodeLoss, isLost, lossJson } = require('../../daemon/dist/events.js');

const S = schema();
const LIFE = S.constants.life;
const C = (g, n) => S.constants[g][n].value;

function tmpdir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'vordr-lifetime-test-'));
}

async function connect(addon = fakeAddon()) {
  const r = await Kernel.connect(addon);
  assert.ok(r.isOk(), JSON.stringify(r.isErr() && r.error));
  return { k: r.value, addon };
}

test('vocab: a rule\'s life by name and back, from the schema', () => {
  const v = vocabulary(S);
  for (const [name, c] of Object.entries(LIFE)) {
    assert.equal(v.life(name), c.value);
    assert.equal(v.lifeName(c.value), name);
  }
  assert.deepEqual(v.lifeNames().sort(), Object.keys(LIFE).sort());
  assert.equal(v.life('forever'), undefined);
});

test('Kernel.ruleAdd sends timeout and life as given, and nothing it was not given', async () => {
  const { k, addon } = await connect();
  const v = vocabulary(S);
  const tcp = C('prot', 'tcp');
  const allow = C('value', 'allow');
  assert.ok((await k.ruleAdd(tcp, '/a', allow)).isOk());
  assert.ok((await k.ruleAdd(tcp, '/b', allow, { life: v.life('exit'), timeout: 30 })).isOk());
  assert.ok((await k.ruleAdd(tcp, '/c', allow, { life: v.life('reboot') })).isOk());
  const adds = addon.calls.filter((c) => c.command === 'rule_add').map((c) => c.attrs);
  assert.deepEqual(adds[0], { prot: tcp, path: '/a', verdict: allow });
  assert.deepEqual(adds[1], { prot: tcp, path: '/b', verdict: allow, timeout: 30, life: LIFE.exit.value });
  assert.deepEqual(adds[2], { prot: tcp, path: '/c', verdict: allow, life: LIFE.reboot.value });
  // Dumps: the life sent back; a rule without one lasts always.
  const rules = (await k.ruleList())._unsafeUnwrap();
  assert.deepEqual(rules.map((r) => [r.path, r.life]).sort(), [['/a', LIFE.always.value], ['/b', LIFE.exit.value], ['/c', LIFE.reboot.value]]);
  k.close();
});

test('a schema without the life constants is an addon mismatch, named', async () => {
  const constants = { ...S.constants };
  delete constants.life;
  const r = await Kernel.connect(fakeAddon({ schema: { ...S, constants } }));
  assert.ok(r.isErr());
  assert.equal(r.error.kind, 'addon-mismatch');
  assert.match(r.error.missing.join(), /life/);
});

test('the loss marker: its counts decoded, and one JSON line with the module\'s evdrops', () => {
  const m = { lost: true, overruns: 2, drops: 1168 };
  assert.ok(isLost(m));
  assert.ok(!isLost({ verdict: 3 }));
  assert.deepEqual(decodeLoss(m, 1200n), { overruns: 2, drops: 1168, evdrops: 1200n });
  assert.deepEqual(decodeLoss({ lost: true, overruns: 1 }), { overruns: 1, drops: undefined, evdrops: undefined });
  const now = new Date('2026-12-01T00:00:00Z');
  assert.deepEqual(JSON.parse(lossJson(decodeLoss(m, 1200n), now)),
    { time: now.toISOString(), lost: true, overruns: 2, drops: 1168, evdrops: 1200 });
  assert.deepEqual(JSON.parse(lossJson(decodeLoss({ lost: true, overruns: 1 }), now)), { time: now.toISOString(), lost: true, overruns: 1 });
});

test('--service writes one line per loss, with evdrops, in order with the events around it', async () => {
  const dir = tmpdir();
  const addon = fakeAddon();
  addon.flags.set(S.flags.evdrops.id, 77n);
  let stop;
  const stopService = new Promise((r) => (stop = r));
  const stdout = sink();
  const stderr = sink();
  const running = main({
    argv: ['--service'], stdin: Object.assign(Readable.from([]), { isTTY: false }), stdout, stderr,
    loadAddon: () => ok(addon), cwd: dir, rulesFile: path.join(dir, 'rules'),
    policyFile: path.join(dir, 'policy'), privileged: true, stopService,
  });
  while (!addon.subscribed) await new Promise((r) => setImmediate(r));
  const ev = (port) => ({ verdict: C('value', 'block'), reason: C('reason', 'norule'), dir: C('dir', 'out'), prot: C('prot', 'udp'), af: 2, dport: port, path: '/usr/bin/x' });
  addon.emit(ev(1));
  addon.emit({ lost: true, overruns: 1, drops: 40 });
  addon.emit(ev(2));   // while evdrops is being asked for
  addon.emit(ev(3));
  stop();
  assert.equal(await running, 0);
  const lines = stdout.text.trimEnd().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => (l.lost ? `lost ${l.overruns} ${l.drops} ${l.evdrops}` : l.dport)), [1, 'lost 1 40 77', 2, 3]);
  assert.equal(stderr.text, '');
});
