'use strict';
// The script runner and the kernel wrapper, driven through a FAKE addon that
// records requests (daemon/test/fixture.js).  This checks the daemon's own
// logic only: ordering, error collection, output format; the real module is
// tested end to end in the VM.  Needs `npx tsc -p tsconfig.json` first.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { fakeAddon, sink } = require('../../daemon/test/fixture.js');
const { Kernel, describeKernelError, PERMISSION_MESSAGE } = require('../../daemon/dist/kernel.js');
const { Runner, describeLineError } = require('../../daemon/dist/script.js');
const { NEW_FILE_HEADER } = require('../../daemon/dist/rulesfile.js');
const { vocabulary } = require('../../daemon/dist/vocab.js');
const { parseLine } = require('../../daemon/dist/grammar.js');

function tmpdir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'vordr-daemon-test-'));
}

async function setup(options = {}) {
  const addon = fakeAddon(options);
  const k = await Kernel.connect(addon);
  assert.ok(k.isOk(), k.isErr() ? describeKernelError(k.error) : '');
  const out = sink();
  const err = sink();
  const dir = tmpdir();
  const runner = new Runner({
    kernel: k.value,
    vocab: vocabulary(addon.schema),
    out,
    err,
    cwd: dir,
    rulesFile: path.join(dir, 'etc', 'vordr', 'rules'),
    now: () => new Date('2026-11-22T10:00:00Z'),
  });
  const S = addon.schema;
  return {
    addon, runner, out, err, dir, S,
    PROT: (n) => S.constants.prot[n].value,
    VAL: (n) => S.constants.value[n].value,
    /** The requests after hello. */
    sent: () => addon.calls.filter((c) => c.command !== 'hello'),
  };
}

test('connect says hello and checks the schema before anything else', async () => {
  const { addon } = await setup();
  assert.deepEqual(addon.calls.map((c) => c.command), ['hello']);
});

test('connect reports a module that is not loaded', async () => {
  const r = await Kernel.connect(fakeAddon({ notLoaded: true }));
  assert.ok(r.isErr());
  assert.equal(r.error.kind, 'not-loaded');
  assert.match(describeKernelError(r.error), /not loaded; load it with 'modprobe vordr'/);
});

test('connect refuses a module built from another schema and closes the connection', async () => {
  const addon = fakeAddon({ helloSchema: 0xdeadbeef });
  const r = await Kernel.connect(addon);
  assert.ok(r.isErr());
  assert.equal(r.error.kind, 'schema-mismatch');
  assert.match(describeKernelError(r.error), /module built from another schema version.*rebuild\/reload it/);
  assert.equal(addon.connection.closed, true);
});

test('connect refuses an addon whose schema lacks a command the daemon uses', async () => {
  const base = fakeAddon();
  const { rule_list: _gone, ...commands } = base.schema.commands;
  const r = await Kernel.connect(fakeAddon({ schema: { ...base.schema, commands } }));
  assert.ok(r.isErr());
  assert.equal(r.error.kind, 'addon-mismatch');
  assert.match(describeKernelError(r.error), /rule_list/);
});

test('runs the lines in order with the schema numbers', async () => {
  const t = await setup();
  const r = await t.runner.runLines(['allow tcp /usr/bin/curl', 'block /opt/vordr-test/nc', 'clear tcp /usr/bin/curl', 'clear allow', 'clear all'], 'rules');
  assert.deepEqual(r.failures, []);
  assert.deepEqual(t.sent(), [
    { command: 'rule_add', attrs: { prot: t.PROT('tcp'), path: '/usr/bin/curl', verdict: t.VAL('allow') } },
    { command: 'rule_add', attrs: { prot: t.PROT('any'), path: '/opt/vordr-test/nc', verdict: t.VAL('block') } },
    { command: 'rule_del', attrs: { path: '/usr/bin/curl', prot: t.PROT('tcp') } },
    { command: 'rule_clear', attrs: { verdict: t.VAL('allow') } },
    { command: 'rule_clear', attrs: undefined },
  ]);
  assert.equal(t.err.text, '');
});

test('clear PATH removes every rule for the path without naming a protocol', async () => {
  const t = await setup();
  await t.runner.runLines(['allow tcp /x', 'allow udp /x', 'clear /x'], 'f');
  assert.deepEqual(t.sent()[2], { command: 'rule_del', attrs: { path: '/x' } });
  assert.equal(t.addon.rules.size, 0);
});

test('enable, block and allow without a path set the mode flag', async () => {
  const t = await setup();
  const mode = t.S.flags.mode.id;
  await t.runner.runLines(['block', 'allow', 'enable'], 'f');
  assert.deepEqual(t.sent(), [
    { command: 'flag_set', attrs: { flag: mode, value: BigInt(t.VAL('block')) } },
    { command: 'flag_set', attrs: { flag: mode, value: BigInt(t.VAL('disabled')) } },
    { command: 'flag_set', attrs: { flag: mode, value: BigInt(t.VAL('enabled')) } },
  ]);
});

test('a line that does not parse is reported as FILE:LINE and skipped; the other lines still run', async () => {
  const t = await setup();
  const r = await t.runner.runLines(['allow tcp /a', 'allow sctp /b', '', 'allow tcp relative', 'block udp /c'], 'my.rules');
  assert.deepEqual(r.failures.map((f) => [f.line, f.error.kind]), [[2, 'parse'], [4, 'parse']]);
  assert.match(t.err.text, /^my\.rules:2: error: unknown protocol 'sctp'/m);
  assert.match(t.err.text, /^my\.rules:4: error: relative path/m);
  assert.match(t.err.text, /^my\.rules: 2 lines failed \(lines 2, 4\)$/m);
  assert.deepEqual(t.sent().map((c) => c.attrs.path), ['/a', '/c']);
});

test('parse errors are reported before any line runs', async () => {
  const t = await setup({ unprivileged: true });
  await t.runner.runLines(['allow /a', 'bogus'], 'f');
  const lines = t.err.text.split('\n');
  assert.match(lines[0], /^f:2: error: unknown command 'bogus'/);
  assert.match(lines[1], /^f:1: error: changing rules needs root or CAP_NET_ADMIN$/);
});

test('an unprivileged user gets one permission error per change, and queries still work', async () => {
  const t = await setup({ unprivileged: true });
  const r = await t.runner.runLines(['allow tcp /a', 'query', 'set mode disable', 'get mode'], 'f');
  assert.deepEqual(r.failures.map((f) => f.line), [1, 3]);
  for (const f of r.failures) {
    assert.equal(f.error.error.kind, 'permission');
    assert.equal(f.message, PERMISSION_MESSAGE);
  }
  assert.equal(PERMISSION_MESSAGE, 'changing rules needs root or CAP_NET_ADMIN');
  assert.match(t.out.text, /^mode: enabled$/m);
});

test('kernel errors are collected, and every line still runs', async () => {
  const einval = Object.assign(new Error('value not allowed for this flag'), { errno: 22, code: 'EINVAL', attr: 'value' });
  const t = await setup({ fail: { flag_set: einval } });
  const r = await t.runner.runLines(['clear tcp /nothing', 'set mode enabled', 'allow /z', 'clear /nothing'], 'f');
  assert.deepEqual(r.failures.map((f) => f.line), [1, 2, 4]);
  assert.match(t.err.text, /^f:1: error: no tcp rule for \/nothing$/m);
  assert.match(t.err.text, /^f:2: error: flag_set: value not allowed for this flag \(EINVAL\) \[attribute value\]$/m);
  assert.match(t.err.text, /^f:4: error: no rule for \/nothing$/m);
  assert.ok(t.addon.rules.has(`${t.PROT('any')} /z`));
});

test('a rule listing cut short by a concurrent change is asked again, up to three times', async () => {
  const eintr = () => Object.assign(new Error('dump interrupted by a concurrent change; retry'), { errno: 4, code: 'EINTR' });
  const t = await setup({ fail: { rule_list: [eintr(), eintr()] } });
  const r = await t.runner.runLines(['allow /a', 'query'], 'f');
  assert.deepEqual(r.failures, []);
  assert.match(t.out.text, /^allow any \/a  /m);
  const u = await setup({ fail: { rule_list: [eintr(), eintr(), eintr()] } });
  const r2 = await u.runner.runLines(['query'], 'f');
  assert.equal(r2.failures.length, 1);
  assert.match(u.err.text, /^f:1: error: rule_list: dump interrupted by a concurrent change; retry \(EINTR\)$/m);
});

test('a full rule table is reported as such', async () => {
  const t = await setup({ capacity: 1 });
  const r = await t.runner.runLines(['allow /a', 'allow /b', 'block /a'], 'f');
  assert.deepEqual(r.failures.map((f) => f.line), [2]);
  assert.match(t.err.text, /^f:2: error: the rule table is full/m);
});

test('stats on a module without STATS is reported as not supported', async () => {
  const t = await setup({ noStats: true });
  const r = await t.runner.runLines(['stats'], 'f');
  assert.equal(r.failures.length, 1);
  assert.match(t.err.text, /^f:1: error: stats is not supported by this module yet$/m);
});

test('stats prints one line per application, busiest first, with human byte counts', async () => {
  const t = await setup();
  t.addon.stats.set('/usr/bin/curl', { apackets: 3n, abytes: 2048n, bpackets: 0n, bbytes: 0n, lasthit: 0n });
  t.addon.stats.set('/opt/My App/app', { apackets: 10n, abytes: 5000000n, bpackets: 4n, bbytes: 240n, lasthit: 1795341600n });
  const r = await t.runner.runLines(['stats'], 'f');
  assert.deepEqual(r.failures, []);
  assert.equal(
    t.out.text,
    [
      'application        allowed  bytes  blocked  bytes  last',
      '"/opt/My App/app"       10   4.8M        4    240  2026-11-22T10:00:00Z',
      '/usr/bin/curl            3   2.0K        0      0  never',
      '',
    ].join('\n'),
  );
});

test('stats breaks an application down by destination: a name where its lookup gave one, a service by its own port, the rest summed', async () => {
  const t = await setup();
  const C = t.addon.schema.constants;
  const tcp = C.prot.tcp.value;
  const udp = C.prot.udp.value;
  t.addon.stats.set('/usr/bin/curl', { apackets: 12n, abytes: 9000n, bpackets: 1n, bbytes: 60n, lasthit: 0n });
  const ip = (...b) => Buffer.from(b);
  t.addon.dests.push(
    { path: '/usr/bin/curl', prot: tcp, af: 2, daddr: ip(93, 184, 216, 34), qside: C.side.to.value, dport: 443, name: 'example.com', apackets: 10n, abytes: 8000n },
    { path: '/usr/bin/curl', prot: udp, af: 2, daddr: ip(10, 0, 0, 5), qside: C.side.from.value, dport: 5353, bpackets: 1n, bbytes: 60n },
    { path: '/usr/bin/curl', count: 3, apackets: 2n, abytes: 1000n },
  );
  const r = await t.runner.runLines(['stats'], 'f');
  assert.deepEqual(r.failures, []);
  assert.equal(
    t.out.text,
    [
      'application                                    allowed  bytes  blocked  bytes  last',
      '/usr/bin/curl                                       12   8.8K        1     60  never',
      '  tcp to example.com (93.184.216.34) port 443       10   7.8K        0      0  never',
      '  udp from 10.0.0.5 port 5353                        0      0        1     60  never',
      '  3 other destinations                               2   1.0K        0      0  never',
      '',
    ].join('\n'),
  );
});

test('stats with no traffic says so', async () => {
  const t = await setup();
  await t.runner.runLines(['stats'], 'f');
  assert.equal(t.out.text, 'no traffic counted yet\n');
});

test('quit stops the script; the lines after it do not run', async () => {
  const t = await setup();
  const r = await t.runner.runLines(['allow /a', 'quit', 'allow /b'], 'f');
  assert.equal(r.stopped, true);
  assert.deepEqual(t.sent().map((c) => c.attrs.path), ['/a']);
});

test('disconnect and bye stop the script too', async () => {
  for (const word of ['disconnect', 'bye']) {
    const t = await setup();
    const r = await t.runner.runLines([word, 'allow /b'], 'f');
    assert.equal(r.stopped, true);
    assert.deepEqual(t.sent(), []);
  }
});

test('query prints the mode, what the saved policy load did, then one line per rule with its counters', async () => {
  const t = await setup();
  await t.runner.runLines(['allow tcp /usr/bin/curl', 'block any "/opt/My App/app"', 'allow udp /opt/vordr-test/'], 'f');
  t.addon.hit(t.PROT('tcp'), '/usr/bin/curl', 12, 3456, Date.UTC(2026, 10, 22, 10, 0, 0) / 1000);
  await t.runner.runLines(['query'], 'f');
  assert.equal(
    t.out.text,
    [
      'mode: enabled',
      'policy: none',
      'block any "/opt/My App/app"  packets=0 bytes=0 last=never',
      'allow udp /opt/vordr-test/  packets=0 bytes=0 last=never',
      'allow tcp /usr/bin/curl  packets=12 bytes=3456 last=2026-11-22T10:00:00Z',
      '',
    ].join('\n'),
  );
});

test('query lines without their counters are valid commands that recreate the rules', async () => {
  const t = await setup();
  const rules = ['allow tcp /usr/bin/curl', 'block any "/opt/My App/app"', 'allow icmp /opt/vordr-test/', 'block udp "/opt/q\\"uote"'];
  await t.runner.runLines(rules, 'f');
  await t.runner.runLines(['query'], 'f');
  const back = t.out.text.split('\n').slice(2, -1).map((l) => l.replace(/  packets=.*$/, ''));
  const v = vocabulary(t.S);
  const norm = (l) => parseLine(l, v)._unsafeUnwrap().command;
  assert.deepEqual(back.map(norm).sort((a, b) => a.path.localeCompare(b.path)), rules.map(norm).sort((a, b) => a.path.localeCompare(b.path)));
});

test('query allow and query block ask the kernel for one verdict', async () => {
  const t = await setup();
  await t.runner.runLines(['allow /a', 'block /b', 'query block'], 'f');
  assert.deepEqual(t.sent().filter((c) => c.command === 'rule_list').at(-1), { command: 'rule_list', attrs: { verdict: t.VAL('block') } });
  assert.equal(t.out.text, 'mode: enabled\npolicy: none\nblock any /b  packets=0 bytes=0 last=never\n');
});

test('get prints FLAG: value by its canonical name, a read-only flag as a number', async () => {
  const t = await setup();
  const ro = Object.entries(t.S.flags).find(([n, f]) => !f.writable && !t.S.constants[n]);
  t.addon.flags.set(ro[1].id, 4242n);
  await t.runner.runLines(['get mode', 'set mode disable', 'get mode', 'set unkrule pending', 'get unkrule', `get ${ro[0]}`], 'f');
  assert.equal(t.out.text, `mode: enabled\nmode: disabled\nunkrule: pending\n${ro[0]}: 4242\n`);
});

test('help prints the commands to the output', async () => {
  const t = await setup();
  const r = await t.runner.runLines(['help', 'help set'], 'f');
  assert.deepEqual(r.failures, []);
  assert.match(t.out.text, /^commands:/);
  assert.match(t.out.text, /usage: set FLAG VALUE/);
  assert.deepEqual(t.sent(), []);
});

test('save writes the rules as a command file that load reads back', async () => {
  const t = await setup();
  await t.runner.runLines(['allow tcp /usr/bin/curl', 'block "/opt/My App/app"', 'allow udp /opt/vordr-test/', 'save saved.rules'], 'f');
  const file = path.join(t.dir, 'saved.rules');
  const text = fs.readFileSync(file, 'utf8');
  assert.equal(
    text,
    [
      ...NEW_FILE_HEADER,
      // A new file gets every writable flag, in the schema's order.
      ...Object.entries(t.S.flags).filter(([, f]) => f.writable).map(([n, f]) => `set ${n} ${vocabulary(t.S).valueName(f.default)}`),
      'block any "/opt/My App/app"',
      'allow udp /opt/vordr-test/',
      'allow tcp /usr/bin/curl',
      '',
    ].join('\n'),
  );
  assert.match(t.out.text, /saved 3 rules to /);
  assert.deepEqual(fs.readdirSync(t.dir), ['saved.rules'], 'no temporary file is left behind');

  const u = await setup();
  const r = await u.runner.runLines([`load ${file}`], 'console');
  assert.deepEqual(r.failures, []);
  const rules = (a) => [...a.rules.values()].map((x) => `${x.verdict} ${x.prot} ${x.path}`).sort();
  assert.deepEqual(rules(u.addon), rules(t.addon));
});

test('save without FILE writes the default rules file, creating its directory', async () => {
  const t = await setup();
  await t.runner.runLines(['allow /a', 'save'], 'f');
  assert.match(fs.readFileSync(path.join(t.dir, 'etc', 'vordr', 'rules'), 'utf8'), /^allow any \/a$/m);
});

test('save replaces an existing file whole', async () => {
  const t = await setup();
  const file = path.join(t.dir, 'r');
  fs.writeFileSync(file, 'allow /old\n'.repeat(100));
  await t.runner.runLines(['allow /new', 'save r'], 'f');
  const text = fs.readFileSync(file, 'utf8');
  assert.ok(!text.includes('/old'));
  assert.match(text, /^allow any \/new$/m);
});

test('save to an unwritable place is a failed line saying why', async () => {
  const t = await setup();
  fs.writeFileSync(path.join(t.dir, 'notadir'), '');
  const r = await t.runner.runLines(['save notadir/rules'], 'f');
  assert.equal(r.failures.length, 1);
  assert.match(t.err.text, /^f:1: error: cannot write .*notadir\/rules: /m);
});

test('load reports the failed lines of the loaded file by its name, and fails the load line', async () => {
  const t = await setup();
  fs.writeFileSync(path.join(t.dir, 'inner'), 'allow /a\nallow tcp nope\nblock /b\n');
  const r = await t.runner.runLines(['load inner', 'allow /c'], 'outer');
  assert.deepEqual(r.failures.map((f) => [f.source, f.line]), [['outer', 1]]);
  assert.match(t.err.text, /^inner:2: error: relative path/m);
  assert.match(t.err.text, /^outer:1: error: 1 line of inner failed$/m);
  assert.deepEqual(t.sent().map((c) => c.attrs.path), ['/a', '/b', '/c']);
});

test('load of a missing file is a failed line', async () => {
  const t = await setup();
  const r = await t.runner.runLines(['load nosuch'], 'f');
  assert.equal(r.failures.length, 1);
  assert.match(t.err.text, /^f:1: error: cannot read nosuch: no such file or directory$/m);
});

test('a file that loads itself, directly or not, is stopped', async () => {
  const t = await setup();
  fs.writeFileSync(path.join(t.dir, 'a'), 'allow /a\nload b\n');
  fs.writeFileSync(path.join(t.dir, 'b'), 'allow /b\nload a\n');
  const r = await t.runner.runLines(['load a'], 'top');
  assert.equal(r.failures.length, 1);
  assert.match(t.err.text, /^b:2: error: a is already being loaded/m);
  assert.deepEqual(t.sent().map((c) => c.attrs.path), ['/a', '/b']);
});

test('quit in a loaded file stops that file only', async () => {
  const t = await setup();
  fs.writeFileSync(path.join(t.dir, 'q'), 'allow /a\nquit\nallow /never\n');
  const r = await t.runner.runLines(['load q', 'allow /after'], 'top');
  assert.deepEqual(r.failures, []);
  assert.deepEqual(t.sent().map((c) => c.attrs.path), ['/a', '/after']);
});

test('runLine returns a console line\'s error instead of printing it', async () => {
  const t = await setup();
  const bad = await t.runner.runLine('allow nope');
  assert.ok(bad.isErr());
  assert.equal(bad.error.kind, 'parse');
  const quiet = await t.runner.runLine('# just a comment');
  assert.equal(quiet._unsafeUnwrap(), 'continue');
  assert.equal((await t.runner.runLine('quit'))._unsafeUnwrap(), 'stop');
  assert.equal(t.err.text, '');
});

// ---------------------------------------------------------------- the console's safety and feedback (issue 12)

async function consoleSetup({ confirm } = {}) {
  const addon = fakeAddon();
  const k = (await Kernel.connect(addon))._unsafeUnwrap();
  const out = sink();
  const err = sink();
  const dir = tmpdir();
  const asked = [];
  const runner = new Runner({
    kernel: k, vocab: vocabulary(addon.schema), out, err, cwd: dir,
    rulesFile: path.join(dir, 'rules'), autosave: true,
    ...(confirm ? { confirm: async (q) => { asked.push(q); return confirm(q); } } : {}),
  });
  const S = addon.schema;
  return { addon, runner, out, err, dir, asked, S, mode: () => addon.flags.get(S.flags.mode.id) };
}

test('a bare block or allow typed in the console asks first; no leaves the mode alone, yes says the new mode', async () => {
  const no = await consoleSetup({ confirm: () => false });
  assert.ok((await no.runner.runLine('block')).isOk());
  assert.equal(no.asked.length, 1);
  assert.match(no.asked[0], /block.*every packet is dropped/);
  assert.equal(no.mode(), BigInt(no.S.constants.value.enabled.value), 'declined: the mode is unchanged');
  assert.equal(no.addon.calls.filter((c) => c.command === 'flag_set').length, 0);
  assert.match(no.out.text, /cancelled; the mode is unchanged/);

  const yes = await consoleSetup({ confirm: () => true });
  assert.ok((await yes.runner.runLine('allow')).isOk());
  assert.match(yes.asked[0], /disabled.*every packet passes/);
  assert.equal(yes.mode(), BigInt(yes.S.constants.value.disabled.value));
  assert.match(yes.out.text, /^mode: disabled \(every packet passes, nothing is enforced\)/m);
  assert.ok((await yes.runner.runLine('enable')).isOk());
  assert.equal(yes.asked.length, 1, 'enable is not asked');
});

test('a bare block read from standard input (no one to ask) runs as E7 wrote it, as in a script', async () => {
  const t = await consoleSetup();
  const r = await t.runner.runLine('block');
  assert.ok(r.isOk());
  assert.equal(t.mode(), BigInt(t.S.constants.value.block.value));
  assert.match(t.out.text, /^mode: block \(every packet is dropped\)/m);
  const asked = await consoleSetup({ confirm: () => false });
  const s = await asked.runner.runLines(['block'], 'f');
  assert.deepEqual(s.failures, []);
  assert.equal(asked.asked.length, 0, 'a script is never asked');
  assert.equal(asked.mode(), BigInt(asked.S.constants.value.block.value));
});

test('the line console asks a typed bare block on its own line; the answer is not run as a command', async () => {
  const { runConsole } = require('../../daemon/dist/console.js');
  const { PassThrough } = require('node:stream');
  for (const [answer, expect] of [['y', 'block'], ['', 'enabled'], ['block', 'enabled']]) {
    let ask;
    const t = await consoleSetup({ confirm: (q) => ask(q) });
    const input = new PassThrough();
    const output = sink();
    const done = runConsole({ input, output, err: t.err, terminal: false, asker: (a) => (ask = a) }, t.runner);
    input.write('block\n');
    await new Promise((r) => setTimeout(r, 50));
    assert.match(output.text, /Switch the whole machine to mode block.*\[y\/N\]/);
    input.end(`${answer}\n`);
    assert.equal(await done, 0, `answer '${answer}': nothing failed`);
    assert.equal(t.mode(), BigInt(t.S.constants.value[expect].value), `answer '${answer}'`);
    assert.equal(t.asked.length, 1, `answer '${answer}' was not taken as a second command`);
  }
});

test('every console change prints one confirmation line', async () => {
  const t = await consoleSetup();
  const lines = ['allow tcp /opt/vordr-test/a', 'block udp /opt/vordr-test/a for 1h', 'clear udp /opt/vordr-test/a', 'set squelch disabled', 'clear all'];
  for (const l of lines) {
    const before = t.out.text.split('\n').length;
    const r = await t.runner.runLine(l);
    assert.ok(r.isOk(), `${l}: ${r.isErr() ? describeLineError(r.error) : ''}`);
    const said = t.out.text.split('\n').slice(before - 1, -1).filter((x) => !x.startsWith('note:'));
    assert.equal(said.length, 1, `${l}: ${JSON.stringify(said)}`);
  }
  assert.match(t.out.text, /^added: allow tcp \/opt\/vordr-test\/a \(saved in .*rules\)/m);
  assert.match(t.out.text, /^added: block udp \/opt\/vordr-test\/a for 1h \(temporary: not saved\)/m);
  assert.match(t.out.text, /^squelch: disabled/m);
});

test('a rule path that is a symbolic link names the file it resolves to, and the console says so; a missing path is warned about', async () => {
  const t = await consoleSetup();
  const real = path.join(t.dir, 'python3.11');
  fs.writeFileSync(real, '');
  fs.symlinkSync('python3.11', path.join(t.dir, 'python3'));
  const r = await t.runner.runLine(`allow tcp ${path.join(t.dir, 'python3')}`);
  assert.ok(r.isOk());
  const adds = t.addon.calls.filter((c) => c.command === 'rule_add');
  assert.equal(adds.at(-1).attrs.path, fs.realpathSync(real), 'the kernel gets the file the link names');
  assert.match(t.out.text, /python3 is a symbolic link: the rule names the file it resolves to, .*python3\.11/);
  assert.match(fs.readFileSync(path.join(t.dir, 'rules'), 'utf8'), /^allow tcp .*python3\.11$/m);
  assert.ok((await t.runner.runLine(`clear tcp ${path.join(t.dir, 'python3')}`)).isOk(), 'clear by the link removes it');
  assert.equal(t.addon.rules.size, 0);
  assert.ok((await t.runner.runLine('allow tcp /opt/vordr-test/nothere')).isOk());
  assert.match(t.out.text, /warning: \/opt\/vordr-test\/nothere does not exist; the rule is added as written/);
  assert.equal(t.addon.rules.size, 1, 'still added');
});

test('the first block rule while unkrule is allow notes what a path rule does not catch, once', async () => {
  const t = await consoleSetup();
  assert.ok((await t.runner.runLine('block tcp /opt/vordr-test/a')).isOk());
  assert.ok((await t.runner.runLine('block tcp /opt/vordr-test/b')).isOk());
  const notes = t.out.text.split('\n').filter((l) => l.startsWith('note:'));
  assert.equal(notes.length, 1);
  assert.match(notes[0], /copy or hard link.*ELF loader.*renamed binary.*'set unkrule block' or 'set unkrule pending'.*security boundary/);
  const p = await consoleSetup();
  p.addon.flags.set(p.S.flags.unkrule.id, BigInt(p.S.constants.value.pending.value));
  assert.ok((await p.runner.runLine('block tcp /opt/vordr-test/a')).isOk());
  assert.doesNotMatch(p.out.text, /^note:/m, 'default-deny already: no note');
});
