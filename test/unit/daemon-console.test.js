'use strict';
// The console's own logic: the command line (editing, history, completion),
// prompts for unknown applications (merging, answers, time-outs), events as
// rows and JSON, the saved boot policy, and --service.  Driven through the
// FAKE addon (daemon/test/fixture.js); the real console against the real
// module is test/vm/console.test.mjs.  Needs `npx tsc -p tsconfig.json` first.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { ok } = require('neverthrow');
const { fakeAddon, sink, schema } = require('../../daemon/test/fixture.js');
const { Kernel } = require('../../daemon/dist/kernel.js');
const { Runner } = require('../../daemon/dist/script.js');
const { parsePolicy } = require('../../daemon/dist/policy.js');

/** The derived policy file's records, as rule lines and flag NAME=VALUE. */
function policyOf(file) {
  const p = parsePolicy(fs.readFileSync(file), v)._unsafeUnwrap();
  return {
    rules: p.records.filter((r) => r.kind === 'rule').map((r) => `${v.valueName(r.verdict)} ${v.protName(r.prot)} ${r.path}`),
    flags: Object.fromEntries(p.records.filter((r) => r.kind === 'flag').map((r) => [v.flagById(r.flag).name, v.valueName(r.value)])),
  };
}
const { vocabulary } = require('../../daemon/dist/vocab.js');
const { complete, LineEditor } = require('../../daemon/dist/lineedit.js');
const { Prompts, ONCE_SECONDS } = require('../../daemon/dist/prompts.js');
const { decodeEvent, eventRow, eventJson, peer, Users, EVENT_HEADER } = require('../../daemon/dist/events.js');
const { main } = require('../../daemon/dist/cli.js');
const { Readable } = require('node:stream');

const S = schema();
const v = vocabulary(S);
const VAL = (n) => S.constants.value[n].value;
const PROT = (n) => S.constants.prot[n].value;
const REASON = (n) => S.constants.reason[n].value;
const DIR = (n) => S.constants.dir[n].value;

const FS = {
  '/': [{ name: 'usr', dir: true }, { name: 'opt', dir: true }],
  '/usr': [{ name: 'bin', dir: true }, { name: 'lib', dir: true }],
  '/usr/bin': [{ name: 'curl', dir: false }, { name: 'cut', dir: false }, { name: 'socat', dir: false }],
  '/opt': [{ name: 'My App', dir: true }],
  '/opt/My App': [{ name: 'app', dir: false }],
};
const list = (d) => FS[d] ?? [];
const c = (line, cursor = line.length) => complete(line, cursor, v, { cwd: '/', list });

function tmpdir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'vordr-console-test-'));
}

// ------------------------------------------------------------ completion

test('Tab completes a command word, or lists the candidates and extends to their common prefix', () => {
  assert.deepEqual(c('que'), { line: 'query ', cursor: 6, candidates: [] });
  const q = c('qu');
  assert.equal(q.line, 'qu');
  assert.deepEqual(q.candidates, ['query', 'quit']);
  assert.deepEqual(c('dis').line, 'disconnect ');
  assert.ok(c('').candidates.includes('bye'), 'aliases complete too');
});

test('Tab completes flags (writable ones after set), flag values and protocols', () => {
  assert.deepEqual(c('set un').candidates, ['unkproc', 'unkprot', 'unkrule']);
  assert.equal(c('set unkr').line, 'set unkrule ');
  assert.equal(c('set unkrule p').line, 'set unkrule pending ');
  assert.equal(c('get upt').line, 'get uptime ');
  assert.deepEqual(c('set upt').candidates, []);
  assert.equal(c('set upt').line, 'set upt');
  assert.equal(c('allow t').line, 'allow tcp ');
  assert.deepEqual(c('clear a').candidates, ['all', 'allow', 'any']);
  assert.equal(c('query b').line, 'query block ');
  assert.equal(c('help st').line, 'help stats ');
});

test('Tab completes paths: directories keep going, files end the word, blanks get quotes', () => {
  assert.equal(c('allow tcp /u').line, 'allow tcp /usr/');
  assert.equal(c('allow tcp /usr/bin/cu').line, 'allow tcp /usr/bin/cu');
  assert.deepEqual(c('allow tcp /usr/bin/cu').candidates, ['/usr/bin/curl', '/usr/bin/cut']);
  assert.equal(c('block /usr/bin/so').line, 'block /usr/bin/socat ');
  assert.equal(c('block /opt/M').line, 'block "/opt/My App/');
  assert.equal(c('block "/opt/My App/a').line, 'block "/opt/My App/app" ');
  assert.equal(c("allow tcp /usr/bin/cu x", 21).line, "allow tcp /usr/bin/cu x", "completion at the cursor leaves the rest");
});

// ------------------------------------------------------------ line editing

function keys(ed, seq) {
  let last;
  for (const k of seq) last = typeof k === 'string' && k.length === 1 ? ed.key(k, { name: k }) : ed.key(undefined, typeof k === 'string' ? { name: k } : k);
  return last;
}

test('the command line edits, submits on Enter, and keeps a history for Up and Down', () => {
  const ed = new LineEditor(v, { cwd: '/', list });
  assert.deepEqual(keys(ed, [...'get mod', 'tab']), { kind: 'complete', candidates: [] });
  assert.equal(ed.text, 'get mode ');
  assert.deepEqual(keys(ed, ['enter']), { kind: 'submit', line: 'get mode ' });
  keys(ed, [...'query', 'enter']);
  keys(ed, [...'draft']);
  keys(ed, ['up']);
  assert.equal(ed.text, 'query');
  keys(ed, ['up']);
  assert.equal(ed.text, 'get mode ');
  assert.equal(keys(ed, ['up']).kind, 'none');
  keys(ed, ['down', 'down']);
  assert.equal(ed.text, 'draft', 'Down past the newest entry gives back the line being typed');
  keys(ed, ['left', 'left', 'backspace']);
  assert.equal(ed.text, 'drft');
  keys(ed, [{ name: 'u', ctrl: true }]);
  assert.equal(ed.text, 'ft');
  keys(ed, [{ name: 'e', ctrl: true }, ...' x', { name: 'w', ctrl: true }]);
  assert.equal(ed.text, 'ft ');
  assert.equal(keys(ed, ['return']).kind, 'none', "blessed's duplicate 'return' is not a second Enter");
  assert.deepEqual(ed.entries(), ['get mode ', 'query']);
});

// ------------------------------------------------------------ events

function pendingEvent(over = {}) {
  return {
    verdict: VAL('pending'), reason: REASON('norule'), dir: DIR('out'), prot: PROT('tcp'), af: 2,
    saddr: Buffer.from([127, 0, 0, 1]), daddr: Buffer.from([127, 0, 0, 1]), sport: 41000, dport: 8000,
    pid: 4242, uid: 0, path: '/usr/bin/curl', dev: 2049, ino: 77n, count: 0, ...over,
  };
}

test('an event decodes to names and addresses, and becomes one row and one JSON line', () => {
  const when = new Date('2026-11-22T10:00:00Z');
  const e = decodeEvent(pendingEvent({ verdict: VAL('block'), reason: REASON('rule'), rpath: '/usr/bin/', rprot: PROT('any'), count: 3 }), v, when);
  assert.equal(e.verdict, 'block');
  assert.equal(e.reason, 'rule');
  assert.equal(e.dir, 'out');
  assert.equal(peer(e), '127.0.0.1:8000');
  assert.deepEqual(e.rule, { path: '/usr/bin/', prot: 'any' });
  const users = new Users('/nonexistent');
  const row = eventRow(e, users);
  assert.match(row, /^\d\d:\d\d:\d\d curl +4242 +0 +out tcp +127\.0\.0\.1:8000 +block +rule any \/usr\/bin\/ \(\+3 squelched\)$/);
  assert.equal(row.indexOf('4242'), EVENT_HEADER.indexOf('pid'), 'rows line up under the header');
  assert.deepEqual(JSON.parse(eventJson(e, users)), {
    time: '2026-11-22T10:00:00.000Z', verdict: 'block', reason: 'rule', dir: 'out', prot: 'tcp', ip: 4,
    src: '127.0.0.1', sport: 41000, dst: '127.0.0.1', dport: 8000, pid: 4242, uid: 0, user: '0',
    path: '/usr/bin/curl', dev: 2049, ino: '77', count: 3, rule: { path: '/usr/bin/', prot: 'any' },
  });
});

test('IPv6 addresses are written the short way, inbound events show the remote end', () => {
  const six = Buffer.alloc(16);
  six[15] = 1;
  const doc = Buffer.from('20010db8000000000000000000000042', 'hex');
  const e = decodeEvent(pendingEvent({ af: 10, saddr: doc, daddr: six, dir: DIR('in'), sport: 443, dport: 50000 }), v);
  assert.equal(e.ip, 6);
  assert.equal(e.daddr, '::1');
  assert.equal(peer(e), '[2001:db8::42]:443');
});

test('a far end the application looked up shows its name beside the address, in the row, the prompt line and the JSON', () => {
  const e = decodeEvent(pendingEvent({ name: 'example.com' }), v);
  assert.equal(e.name, 'example.com');
  assert.equal(peer(e), 'example.com:8000 (127.0.0.1)');
  assert.equal(JSON.parse(eventJson(e, new Users('/nonexistent'))).name, 'example.com');
  const icmp = decodeEvent(pendingEvent({ name: 'example.com', prot: PROT('icmp') }), v);
  assert.equal(peer(icmp), 'example.com (127.0.0.1)');
  // No name attribute: none in the JSON either.
  assert.equal('name' in JSON.parse(eventJson(decodeEvent(pendingEvent(), v), new Users('/nonexistent'))), false);
});

test('an event without an owner shows ? and leaves the owner out of its JSON', () => {
  const { pid, uid, path: p, dev, ino, ...rest } = pendingEvent({ verdict: VAL('block'), reason: REASON('unkproc'), dir: DIR('in') });
  const e = decodeEvent(rest, v, new Date('2026-11-22T10:00:00Z'));
  assert.match(eventRow(e, new Users('/nonexistent')), /^\d\d:\d\d:\d\d \? +\? +\? +in +tcp +127\.0\.0\.1:41000 +block +unkproc$/);
  const j = JSON.parse(eventJson(e, new Users('/nonexistent')));
  for (const k of ['pid', 'uid', 'user', 'path', 'dev', 'ino']) assert.equal(k in j, false, k);
  assert.equal(j.reason, 'unkproc');
});

// ------------------------------------------------------------ prompts

function fakeClock() {
  let now = 1_000_000;
  const timers = [];
  return {
    now: () => now,
    setTimeout: (fn, ms) => {
      const t = { at: now + ms, fn };
      timers.push(t);
      return t;
    },
    clearTimeout: (t) => {
      const i = timers.indexOf(t);
      if (i >= 0) timers.splice(i, 1);
    },
    advance(ms) {
      now += ms;
      for (const t of [...timers].sort((a, b) => a.at - b.at)) {
        if (t.at > now) continue;
        timers.splice(timers.indexOf(t), 1);
        t.fn();
      }
    },
  };
}

async function promptSetup() {
  const addon = fakeAddon();
  const k = (await Kernel.connect(addon))._unsafeUnwrap();
  const dir = tmpdir();
  const runner = new Runner({
    kernel: k, vocab: v, out: sink(), err: sink(), cwd: dir,
    rulesFile: path.join(dir, 'rules'), policyFile: path.join(dir, 'policy'), autosave: true,
  });
  const clock = fakeClock();
  const decided = [];
  const prompts = new Prompts({ kernel: k, runner, vocab: v, clock, timeoutSeconds: 30, onDecided: (p, d, e, timedOut) => decided.push({ p, d, e, timedOut }) });
  const offer = (over) => prompts.offer(decodeEvent(pendingEvent(over), v));
  const rules = () => [...addon.rules.values()].map((r) => ({ verdict: r.verdict, prot: r.prot, path: r.path, timeout: r.timeout }));
  return { addon, k, runner, dir, clock, prompts, decided, offer, rules };
}

test('repeated attempts by one application merge into one prompt; another application waits its turn', async () => {
  const t = await promptSetup();
  assert.equal(t.offer(), 'opened');
  assert.equal(t.offer({ count: 2 }), 'merged');
  assert.equal(t.offer({ prot: PROT('udp'), dport: 53 }), 'merged');
  assert.equal(t.offer({ path: '/usr/bin/wget' }), 'opened');
  assert.equal(t.offer({ verdict: VAL('block') }), 'ignored', 'only pending events ask');
  assert.equal(t.prompts.waiting(), 2);
  const p = t.prompts.current();
  assert.equal(p.path, '/usr/bin/curl');
  assert.equal(p.attempts, 5);
  assert.deepEqual(p.prots, ['tcp', 'udp']);
});

test('allow, this protocol, always: the rules are added for each protocol tried and saved with the boot line', async () => {
  const t = await promptSetup();
  t.offer();
  t.offer({ prot: PROT('udp') });
  t.prompts.choose({ verdict: 'allow', lifetime: { kind: 'always' } });
  const r = await t.prompts.answer();
  assert.ok(r.isOk());
  assert.deepEqual(t.rules(), [
    { verdict: VAL('allow'), prot: PROT('tcp'), path: '/usr/bin/curl', timeout: undefined },
    { verdict: VAL('allow'), prot: PROT('udp'), path: '/usr/bin/curl', timeout: undefined },
  ]);
  const saved = fs.readFileSync(path.join(t.dir, 'rules'), 'utf8');
  assert.match(saved, /^allow tcp \/usr\/bin\/curl$/m);
  assert.match(saved, /^allow udp \/usr\/bin\/curl$/m);
  const pol = policyOf(path.join(t.dir, 'policy'));
  assert.deepEqual(pol.rules, ['allow tcp /usr/bin/curl', 'allow udp /usr/bin/curl'], 'the derived policy follows the rules file');
  assert.equal(pol.flags.unkrule, v.valueName(S.flags.unkrule.default), 'a flag the rules file does not set: its default');
  assert.equal(t.prompts.waiting(), 0);
  assert.equal(t.offer(), 'ignored', 'attempts still in flight right after the answer do not ask again');
  t.clock.advance(6000);
  assert.equal(t.offer({ prot: PROT('icmp') }), 'opened', 'later, another protocol asks');
});

test('block, any protocol, once: one rule that expires, never saved', async () => {
  const t = await promptSetup();
  t.offer();
  t.prompts.choose({ verdict: 'block', scope: 'any', lifetime: { kind: 'for', seconds: ONCE_SECONDS } });
  await t.prompts.answer();
  assert.deepEqual(t.rules(), [{ verdict: VAL('block'), prot: PROT('any'), path: '/usr/bin/curl', timeout: ONCE_SECONDS }]);
  await t.runner.runLines(['save'], 'f');
  assert.doesNotMatch(fs.readFileSync(path.join(t.dir, 'rules'), 'utf8'), /curl/);
});

test('until exit: the rule is never saved and endSession removes it', async () => {
  const t = await promptSetup();
  t.offer();
  t.prompts.choose({ verdict: 'allow', lifetime: { kind: 'exit' } });
  await t.prompts.answer();
  assert.equal(t.rules().length, 1);
  assert.equal((await t.runner.runLine('allow /usr/bin/other')).isOk(), true);
  const saved = fs.readFileSync(path.join(t.dir, 'rules'), 'utf8');
  assert.match(saved, /^allow any \/usr\/bin\/other$/m, 'the console saves after a rule command');
  assert.doesNotMatch(saved, /curl/);
  await t.runner.endSession();
  assert.deepEqual(t.rules().map((r) => r.path), ['/usr/bin/other']);
});

test('a session rule retyped by hand becomes a standing rule', async () => {
  const t = await promptSetup();
  t.offer();
  t.prompts.choose({ verdict: 'allow', lifetime: { kind: 'exit' } });
  await t.prompts.answer();
  await t.runner.runLine('allow tcp /usr/bin/curl');
  assert.match(fs.readFileSync(path.join(t.dir, 'rules'), 'utf8'), /^allow tcp \/usr\/bin\/curl$/m);
  await t.runner.endSession();
  assert.equal(t.rules().length, 1);
});

test('an unanswered prompt times out to block, this protocol, once; the next one counts from when it is shown', async () => {
  const t = await promptSetup();
  t.offer();
  t.prompts.shown();
  t.clock.advance(10_000);
  t.offer({ path: '/usr/bin/wget' });
  assert.equal(t.prompts.secondsLeft(), 20);
  t.clock.advance(20_000);
  for (const end = Date.now() + 5000; t.decided.length < 1 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 2));
  assert.equal(t.decided.length, 1);
  assert.equal(t.decided[0].timedOut, true);
  assert.deepEqual(t.rules(), [{ verdict: VAL('block'), prot: PROT('tcp'), path: '/usr/bin/curl', timeout: ONCE_SECONDS }]);
  assert.equal(t.prompts.current().path, '/usr/bin/wget');
  t.clock.advance(60_000);
  await new Promise((r) => setImmediate(r));
  assert.equal(t.decided.length, 1, 'wget is not decided before it was shown');
  t.prompts.shown();
  assert.equal(t.prompts.secondsLeft(), 30, 'wget gets the whole time once shown');
  t.clock.advance(30_000);
  while (t.decided.length < 2) await new Promise((r) => setImmediate(r));
  assert.equal(t.prompts.waiting(), 0);
  assert.equal(t.rules().length, 2);
});

test('a refused answer (no CAP_NET_ADMIN) is reported, not swallowed', async () => {
  const addon = fakeAddon({ unprivileged: true });
  const k = (await Kernel.connect(addon))._unsafeUnwrap();
  const runner = new Runner({ kernel: k, vocab: v, out: sink(), err: sink(), rulesFile: path.join(tmpdir(), 'r') });
  const decided = [];
  const prompts = new Prompts({ kernel: k, runner, vocab: v, clock: fakeClock(), onDecided: (p, d, e) => decided.push(e) });
  prompts.offer(decodeEvent(pendingEvent(), v));
  const r = await prompts.answer({ verdict: 'allow', scope: 'prot', lifetime: { kind: 'always' } });
  assert.ok(r.isErr());
  assert.equal(decided[0].kind, 'permission');
});

// ------------------------------------------------------------ cli: --service, --set

async function cli(argv, { addon = fakeAddon(), dir = tmpdir(), privileged = true, stopService, stdin } = {}) {
  const stdout = sink();
  const stderr = sink();
  const code = await main({
    argv, stdin: stdin ?? Object.assign(Readable.from([]), { isTTY: false }), stdout, stderr,
    loadAddon: () => ok(addon), cwd: dir,
    rulesFile: path.join(dir, 'rules'), policyFile: path.join(dir, 'policy'),
    privileged, ...(stopService ? { stopService } : {}),
  });
  return { code, out: stdout.text, err: stderr.text, addon, dir };
}

test('--service applies --set and the rules file, prints each event as one JSON line, and stops cleanly', async () => {
  const dir = tmpdir();
  fs.writeFileSync(path.join(dir, 'rules'), '# saved\nset mode enabled\nallow tcp /usr/bin/curl\nallow tcp relative\nblock /opt/vordr-test/\n');
  const addon = fakeAddon();
  let stop;
  const stopService = new Promise((r) => (stop = r));
  const running = cli(['--service', '--set', 'unkrule=pending'], { addon, dir, stopService });
  while (!addon.subscribed) await new Promise((r) => setImmediate(r));
  addon.emit(pendingEvent());
  addon.emit(pendingEvent({ verdict: VAL('allow'), reason: REASON('rule'), rpath: '/usr/bin/curl', rprot: PROT('tcp') }));
  stop();
  const r = await running;
  assert.equal(r.code, 0);
  const lines = r.out.trimEnd().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => [l.verdict, l.path, l.dport]), [['pending', '/usr/bin/curl', 8000], ['allow', '/usr/bin/curl', 8000]]);
  assert.deepEqual(lines[1].rule, { path: '/usr/bin/curl', prot: 'tcp' });
  assert.match(r.err, /rules:4: error: relative path relative/, 'a bad line of the rules file is reported');
  assert.deepEqual([...addon.rules.values()].map((x) => x.path).sort(), ['/opt/vordr-test/', '/usr/bin/curl'], 'the other lines still apply');
  assert.equal(addon.flags.get(S.flags.unkrule.id), BigInt(VAL('pending')));
  assert.equal(addon.subscribed, false, 'unsubscribed on stop');
  assert.match(fs.readFileSync(path.join(dir, 'rules'), 'utf8'), /^set unkrule pending$/m, '--set is saved');
  const pol = policyOf(path.join(dir, 'policy'));
  assert.deepEqual(pol.rules, ['allow tcp /usr/bin/curl', 'block any /opt/vordr-test/'], 'the rules that parsed, in the file\'s order');
  assert.equal(pol.flags.mode, 'enabled');
  assert.equal(pol.flags.unkrule, 'pending');
});

test('an unprivileged --service only logs: it changes nothing and says why', async () => {
  const dir = tmpdir();
  fs.writeFileSync(path.join(dir, 'rules'), 'allow tcp /usr/bin/curl\n');
  const r = await cli(['--service', '--set', 'unkrule=pending'], { dir, privileged: false, stopService: Promise.resolve() });
  assert.equal(r.code, 0);
  assert.match(r.err, /read-only: changing rules needs root or CAP_NET_ADMIN/);
  assert.deepEqual(r.addon.calls.map((x) => x.command), ['hello']);
});

test('bad --set, --prompt-timeout or --service with -f are usage errors that touch nothing', async () => {
  for (const argv of [['--set', 'nope'], ['--set', 'mode=sideways'], ['--set', 'frob=1'], ['--prompt-timeout', '0'], ['--service', '-f', 'x']]) {
    const r = await cli(argv);
    assert.equal(r.code, 2, argv.join(' '));
    assert.equal(r.err.split('\n').length, 2, `one line: ${r.err}`);
    assert.deepEqual(r.addon.calls.filter((x) => x.command !== 'hello'), [], argv.join(' '));
  }
});

test('scripts (-f, standard input) do not write the rules file; save does', async () => {
  const r = await cli(['-f', '-'], { stdin: Object.assign(Readable.from([Buffer.from('allow /a\n')]), { isTTY: false }) });
  assert.equal(r.code, 0, r.err);
  assert.equal(fs.existsSync(path.join(r.dir, 'rules')), false);
  const s = await cli(['-f', '-'], { dir: r.dir, stdin: Object.assign(Readable.from([Buffer.from('allow /a\nsave\n')]), { isTTY: false }) });
  assert.equal(s.code, 0, s.err);
  assert.match(fs.readFileSync(path.join(r.dir, 'rules'), 'utf8'), /^allow any \/a$/m);
  assert.deepEqual(policyOf(path.join(r.dir, 'policy')).rules, ['allow any /a']);
});

// ------------------------------------------------------------ the command table

test('the command table is the one source of the console: help lists and Tab offers every command', () => {
  const { COMMANDS, help } = require('../../daemon/dist/grammar.js');
  const { helpScreen } = require('../../daemon/dist/ui.js');
  const names = COMMANDS.flatMap((e) => [e.name, ...e.aliases]).sort();
  assert.deepEqual(names, ['allow', 'block', 'bye', 'clear', 'disconnect', 'enable', 'get', 'help', 'load', 'query', 'quit', 'save', 'set', 'stats']);
  assert.deepEqual([...c('').candidates].sort(), names);
  const text = help(undefined, v);
  const screenText = helpScreen(v);
  for (const e of COMMANDS) {
    assert.ok(e.usage.length > 0 && e.summary.length > 0, e.name);
    for (const u of e.usage) {
      assert.ok(text.includes(u), `help lists ${u}`);
      assert.ok(screenText.includes(u), `the help screen lists ${u}`);
    }
    assert.match(help(e.name, v), new RegExp(`^usage: ${e.usage[0].replace(/[[\]|]/g, '\\$&')}`), e.name);
  }
});

test('--set applies before a script too', async () => {
  const r = await cli(['-s', 'unkrule=block', '-f', '-'], { stdin: Object.assign(Readable.from([Buffer.from('get unkrule\n')]), { isTTY: false }) });
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, 'unkrule: block\n');
});
