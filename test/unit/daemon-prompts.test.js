'use strict';
// The interactive console's screen and prompts, driven like a terminal: the
// real console (daemon/src/ui.ts, blessed) on a fake terminal (keys and mouse
// written to its input as a terminal sends them; the screen read back as
// drawn), against the FAKE addon (daemon/test/fixture.js) and a fake clock
// for the prompts.  What the real module and a real terminal (tmux) do is
// test/vm/console.test.mjs.  Needs `npx tsc -p tsconfig.json` first.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { PassThrough } = require('node:stream');
const { fakeAddon, schema } = require('../../daemon/test/fixture.js');
const { Kernel } = require('../../daemon/dist/kernel.js');
const { Runner } = require('../../daemon/dist/script.js');
const { vocabulary } = require('../../daemon/dist/vocab.js');
const { runUi } = require('../../daemon/dist/ui.js');
const { help } = require('../../daemon/dist/grammar.js');

const S = schema();
const v = vocabulary(S);
const VAL = (n) => S.constants.value[n].value;
const PROT = (n) => S.constants.prot[n].value;
const REASON = (n) => S.constants.reason[n].value;
const DIR = (n) => S.constants.dir[n].value;
const FLAG = (n) => S.flags[n].id;

function event(over = {}) {
  return {
    verdict: VAL('pending'), reason: REASON('norule'), dir: DIR('out'), prot: PROT('tcp'), af: 2,
    saddr: Buffer.from([127, 0, 0, 1]), daddr: Buffer.from([127, 0, 0, 1]), sport: 41000, dport: 8000,
    pid: 4242, uid: 0, path: '/usr/bin/curl', dev: 2049, ino: 77n, count: 0, ...over,
  };
}

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
    /** Time passes at once (a stopped process): the timers due fire late. */
    jump(ms) {
      now += ms;
      for (const t of [...timers].sort((a, b) => a.at - b.at)) {
        if (t.at > now || !timers.includes(t)) continue;
        timers.splice(timers.indexOf(t), 1);
        t.fn();
      }
    },
  };
}

const open = new Set();
test.afterEach(async () => {
  for (const ui of open) await ui.quit();
});

const tick = () => new Promise((r) => setTimeout(r, 5));

/** The console on a fake COLSxROWS terminal. */
async function console_({ cols = 120, rows = 40, privileged = true, addon = fakeAddon(), timeout = 30 } = {}) {
  const input = new PassThrough();
  Object.assign(input, { isTTY: true, setRawMode: () => input });
  const output = new PassThrough();
  Object.assign(output, { isTTY: true, columns: cols, rows });
  output.resume();
  const kernel = (await Kernel.connect(addon))._unsafeUnwrap();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vordr-ui-test-'));
  const rulesFile = path.join(dir, 'rules');
  const clock = fakeClock();
  let handle;
  const done = runUi({
    kernel, vocab: v, privileged, input, output, rulesFile, promptTimeoutSeconds: timeout, clock,
    runner: (out, err, extra) =>
      new Runner({ kernel, vocab: v, out, err, cwd: dir, rulesFile, policyFile: path.join(dir, 'policy'), autosave: privileged, ...(extra ?? {}) }),
    attach: (h) => (handle = h),
  });
  const screen = () => handle.rows().join('\n');
  const ui = {
    addon, kernel, dir, clock, done, screen,
    /** Keys as a terminal sends them. */
    keys: async (...ks) => {
      for (const k of ks) {
        input.write(k);
        await tick();
      }
    },
    /** Writes a line of text and Enter in one go, as fast typing does. */
    type: async (text) => ui.keys(...text, '\r'),
    async until(pred, what, ms = 3000) {
      const end = Date.now() + ms;
      for (;;) {
        const s = screen();
        if (pred(s)) return s;
        if (Date.now() > end) assert.fail(`timed out waiting for ${what}; the screen:\n${s}`);
        await tick();
      }
    },
    /** The screen row showing TEXT (its index), or -1. */
    row: (re) => handle.rows().findIndex((l) => re.test(l)),
    async quit() {
      if (!open.delete(ui)) return done;
      await ui.keys('\x03');
      return done;
    },
  };
  open.add(ui);
  await ui.until((s) => /vordr>/.test(s) && /rules \(/.test(s), 'the console');
  return ui;
}

const rules = (addon) => [...addon.rules.values()];
const flag = (addon, n) => addon.flags.get(FLAG(n));

// ------------------------------------------------------------ prompts

test('four applications at once: each prompt gets its full time once shown; none is decided unseen', async () => {
  const ui = await console_();
  for (const app of ['curl', 'wget', 'ssh', 'git']) ui.addon.emit(event({ path: `/usr/bin/${app}` }));
  await ui.until((s) => /\/usr\/bin\/curl.* wants to connect/.test(s), 'the first prompt');
  assert.match(ui.screen(), /3 more waiting/, 'the number waiting is on screen');
  for (let i = 0; i < 35; i++) {
    ui.clock.jump(1000);
    await tick();
  }
  await ui.until((s) => /\/usr\/bin\/wget.* wants to connect/.test(s), 'the second prompt');
  assert.equal(rules(ui.addon).length, 1, `only the prompt on screen timed out: ${JSON.stringify(rules(ui.addon).map((r) => r.path))}`);
  assert.equal(rules(ui.addon)[0].path, '/usr/bin/curl');
  assert.match(ui.screen(), /No answer in (2[4-9]|30) s/, 'the next prompt has its own time from when it is shown');
  assert.match(ui.screen(), /2 more waiting/);
  await ui.quit();
});

test('an inbound prompt says the application is accepting or receiving, not connecting', async () => {
  const ui = await console_();
  ui.addon.emit(event({ path: '/usr/bin/python3', dir: DIR('in'), sport: 41000, dport: 8080 }));
  let s = await ui.until((x) => /\/usr\/bin\/python3 wants to/.test(x), 'the TCP prompt');
  assert.match(s, /python3 wants to accept a connection/);
  assert.match(s, /tcp in from 127\.0\.0\.1:41000/);
  ui.clock.jump(1500);
  await ui.keys('\r');
  await ui.until(() => rules(ui.addon).length === 1, 'the first answer');
  ui.addon.emit(event({ path: '/usr/sbin/dnsmasq', dir: DIR('in'), prot: PROT('udp') }));
  s = await ui.until((x) => /dnsmasq wants to/.test(x), 'the UDP prompt');
  assert.match(s, /dnsmasq wants to receive/);
  await ui.quit();
});

test('SIGSTOP then SIGCONT: no queued prompt is decided; the screen is redrawn and the countdown restarts', async () => {
  const ui = await console_();
  for (const app of ['curl', 'wget', 'ssh', 'git']) ui.addon.emit(event({ path: `/usr/bin/${app}` }));
  await ui.until((s) => /wants to connect/.test(s), 'the first prompt');
  ui.clock.jump(10_000);
  await tick();
  // Stopped for 200 s: every timer is overdue when the process runs again.
  ui.clock.jump(200_000);
  for (let i = 0; i < 5; i++) {
    ui.clock.jump(0);
    await tick();
  }
  process.emit('SIGCONT');
  const s = await ui.until((x) => /No answer in 30 s/.test(x), 'the restarted countdown');
  assert.deepEqual(rules(ui.addon), [], 'nothing was decided while nobody could see it');
  assert.match(s, /\/usr\/bin\/curl.* wants to connect/);
  assert.match(s, /3 more waiting/);
  await ui.quit();
});

test('keys typed before a prompt was shown never answer it ("allow" + Enter)', async () => {
  const ui = await console_();
  await ui.keys('a', 'l');
  ui.addon.emit(event());
  await ui.until((s) => /wants to connect/.test(s), 'the prompt');
  await ui.keys(...'low', '\r');
  await tick();
  assert.deepEqual(rules(ui.addon), [], 'the typed keys made a rule');
  assert.equal(flag(ui.addon, 'mode'), BigInt(VAL('enabled')), 'and nothing else changed');
  await ui.until((s) => /wants to connect/.test(s), 'the prompt still open');
  // After a pause, the prompt takes its keys.
  ui.clock.jump(1500);
  await ui.keys('\x1b'); // closes whatever the typing opened, if anything
  ui.clock.jump(1500);
  await ui.keys('a');
  await ui.keys('\r');
  await ui.until(() => rules(ui.addon).length === 1, 'the rule chosen after the pause');
  assert.equal(rules(ui.addon)[0].verdict, VAL('allow'));
  await ui.quit();
});

test('Esc does what the prompt says it does', async () => {
  const ui = await console_();
  ui.addon.emit(event());
  const s = await ui.until((x) => /wants to connect/.test(x), 'the prompt');
  const esc = /Esc: ([^.]*)\./.exec(s);
  assert.ok(esc, `the prompt says what Esc does:\n${s}`);
  ui.clock.jump(1500);
  await ui.keys('\x1b');
  await ui.until((x) => !/wants to connect/.test(x), 'the prompt to close');
  if (/block/.test(esc[1])) {
    await ui.until(() => rules(ui.addon).length === 1, 'the rule Esc makes');
    assert.equal(rules(ui.addon)[0].verdict, VAL('block'));
  }
  else assert.deepEqual(rules(ui.addon), []);
  await ui.quit();
});

test('a prompt offers this address, and this address and port: the rule says to or from them', async () => {
  const ui = await console_();
  ui.addon.emit(event({ daddr: Buffer.from([93, 184, 216, 34]), dport: 443 }));
  let s = await ui.until((x) => /wants to connect/.test(x) && /\[i\] this address/.test(x), 'the prompt with its scopes');
  assert.match(s, /\[t\] this address and its port/);
  ui.clock.jump(1500);
  await ui.keys('a', 't');
  s = await ui.until((x) => /Enter: allow tcp \/usr\/bin\/curl to 93\.184\.216\.34 port 443/.test(x), 'Enter saying the rule');
  await ui.keys('\r');
  await ui.until(() => rules(ui.addon).length === 1, 'the rule');
  const r = rules(ui.addon)[0];
  assert.deepEqual([...r.qaddr], [93, 184, 216, 34]);
  assert.deepEqual(r.qports, Buffer.from([443 & 0xff, 443 >> 8, 443 & 0xff, 443 >> 8]));
  // Coming in: from the peer, the port the application's own.
  ui.addon.emit(event({ path: '/usr/sbin/sshd', dir: DIR('in'), saddr: Buffer.from([10, 0, 0, 7]), sport: 50000,
    daddr: Buffer.from([10, 0, 0, 1]), dport: 22 }));
  await ui.until((x) => /sshd wants to accept/.test(x), 'the inbound prompt');
  ui.clock.jump(1500);
  await ui.keys('a', 't');
  await ui.until((x) => /Enter: allow tcp \/usr\/sbin\/sshd from 10\.0\.0\.7 port 22/.test(x), 'from the peer, my port');
  await ui.keys('i');
  await ui.until((x) => /Enter: allow tcp \/usr\/sbin\/sshd from 10\.0\.0\.7 for/.test(x), 'this address only');
  await ui.quit();
});

test('a prompt for a connection to a looked-up name offers the name: the rule says to it', async () => {
  const ui = await console_();
  ui.addon.emit(event({ daddr: Buffer.from([93, 184, 216, 34]), dport: 443, name: 'example.com' }));
  await ui.until((x) => /wants to connect/.test(x) && /\[d\] example\.com/.test(x), 'the prompt offering the name');
  ui.clock.jump(1500);
  await ui.keys('a', 'd');
  await ui.until((x) => /Enter: allow tcp \/usr\/bin\/curl to example\.com for/.test(x), 'Enter saying the name rule');
  await ui.keys('\r');
  await ui.until(() => rules(ui.addon).length === 1, 'the rule');
  assert.equal(rules(ui.addon)[0].qname, 'example.com');
  await ui.quit();
});

// ------------------------------------------------------------ commands

test('a bare block typed in the console asks first, then says the new mode', async () => {
  const ui = await console_();
  await ui.type('block');
  await ui.until((s) => /every packet/i.test(s) && /\[y\]/.test(s), 'the question');
  assert.equal(flag(ui.addon, 'mode'), BigInt(VAL('enabled')), 'nothing changed before the answer');
  await ui.keys('n');
  await ui.until((s) => /not changed|cancel/i.test(s), 'the refusal said');
  assert.equal(flag(ui.addon, 'mode'), BigInt(VAL('enabled')));
  await ui.type('allow');
  await ui.until((s) => /every packet/i.test(s) && /\[y\]/.test(s), 'the question for allow');
  await ui.keys('y');
  await ui.until((s) => /mode[: ]+disabled/.test(s.split('output')[1] ?? ''), 'the new mode said in the output pane');
  assert.equal(flag(ui.addon, 'mode'), BigInt(VAL('disabled')));
  await ui.quit();
});

// ------------------------------------------------------------ the screen

test('at 80x24 the verdict column is on screen', async () => {
  const ui = await console_({ cols: 80, rows: 24, privileged: false });
  ui.addon.emit(event({ verdict: VAL('block'), reason: REASON('rule'), rpath: '/usr/bin/curl', rprot: PROT('tcp'), daddr: Buffer.from([203, 0, 113, 77]), dport: 44321 }));
  const s = await ui.until((x) => /curl/.test(x), 'the event');
  const lines = s.split('\n');
  assert.ok(lines.some((l) => /verdict/.test(l)), `the header names the verdict:\n${s}`);
  assert.ok(lines.some((l) => /curl.*block/.test(l)), `the row shows the verdict:\n${s}`);
  assert.ok(lines.every((l) => [...l].length <= 80));
  // A red row exactly as wide as the pane is cut, not wrapped onto a second row.
  ui.addon.emit(event({ verdict: VAL('block'), reason: REASON('rule'), rpath: '/tmp/vordr-console-y5eUP7/curl2', rprot: PROT('tcp'), path: '/tmp/vordr-console-y5eUP7/curl2' }));
  const t = await ui.until((x) => /curl2/.test(x), 'the second event');
  const rows = t.split('rules (')[0].split('\n').slice(3).filter((l) => /^│/.test(l));
  assert.ok(rows.every((l) => /^│(\d\d:\d\d:\d\d | +│)/.test(l)), `every row is an event or empty:\n${t}`);
  await ui.quit();
});

test('the rules pane scrolls with the keys and the mouse wheel', async () => {
  const addon = fakeAddon();
  const names = Array.from({ length: 30 }, (_, i) => `/usr/bin/r${String(i).padStart(2, '0')}`);
  const ui = await console_({ addon });
  for (const n of names) await ui.type(`allow tcp ${n}`);
  await ui.until((s) => /rules \(30\)/.test(s), 'thirty rules');
  const seen = new Set();
  const look = () => {
    for (const n of names) if (ui.screen().includes(`allow tcp ${n}`)) seen.add(n);
  };
  look();
  assert.ok(seen.size < 30, 'the pane is smaller than the list (else this test tests nothing)');
  // The wheel over the rules pane, towards the top.
  const y = ui.row(/rules \(30\)/) + 2;
  for (let i = 0; i < 40; i++) await ui.keys(`\x1b[<64;10;${y + 1}M`);
  look();
  assert.ok(seen.has(names[0]), `the wheel brought the first rule on screen:\n${ui.screen()}`);
  // Keys: select the rules pane, then page through it.
  seen.clear();
  await ui.keys('\x1b[17~', '\x1b[17~'); // F6 twice: the events, then the rules pane
  await ui.until((s) => /rules \(30\).*(PgUp|↑)/.test(s) || /─ rules[^\n]*scroll/.test(s), 'the rules pane selected');
  for (let i = 0; i < 10; i++) {
    await ui.keys('\x1b[5~'); // PageUp
    look();
  }
  for (let i = 0; i < 10; i++) {
    await ui.keys('\x1b[6~'); // PageDown
    look();
  }
  assert.equal(seen.size, 30, `PageUp/PageDown show every rule; missing ${names.filter((n) => !seen.has(n))}`);
  await ui.quit();
});

test("the output pane shows a long answer from its start and scrolls ('help set')", async () => {
  const ui = await console_();
  await ui.type('help set');
  const text = help('set', v).trimEnd().split('\n');
  await ui.until((s) => s.includes('vordr> help set'), 'the command echoed');
  const seen = new Set();
  const look = () => {
    for (const l of text) if (ui.screen().includes(l.trimEnd())) seen.add(l);
  };
  look();
  assert.ok(seen.has(text[0]), `the first line of the answer is on screen:\n${ui.screen()}`);
  await ui.keys('\x1b[17~', '\x1b[17~', '\x1b[17~'); // F6 three times: events, rules, output
  for (let i = 0; i < 5; i++) {
    await ui.keys('\x1b[6~');
    look();
  }
  assert.deepEqual(text.filter((l) => !seen.has(l)), [], 'every line of help set can be read');
  await ui.quit();
});

test('allow-norule events are summarized, one row per application with a count, unless asked for', async () => {
  const ui = await console_({ privileged: false });
  for (let i = 0; i < 40; i++) ui.addon.emit(event({ verdict: VAL('allow'), sport: 30000 + i }));
  for (let i = 0; i < 3; i++) ui.addon.emit(event({ verdict: VAL('allow'), path: '/usr/bin/wget', sport: 31000 + i }));
  ui.addon.emit(event({ verdict: VAL('block'), reason: REASON('rule'), rpath: '/usr/bin/nc', rprot: PROT('any'), path: '/usr/bin/nc' }));
  const s = await ui.until((x) => /nc .*block/.test(x), 'the events');
  const main = s.split('rules (')[0];
  const curlRows = main.split('\n').filter((l) => /\bcurl\b/.test(l));
  assert.equal(curlRows.length, 1, `one row for curl:\n${main}`);
  assert.match(curlRows[0], /\b40\b/, 'with the count');
  assert.equal(main.split('\n').filter((l) => /\bwget\b/.test(l)).length, 1);
  ui.addon.emit(event({ verdict: VAL('allow'), sport: 32000 }));
  await ui.until((x) => /\bcurl\b.*\b41\b/.test(x.split('rules (')[0]), 'the count updated');
  await ui.quit();
});

test('help explains squelched', async () => {
  const ui = await console_();
  await ui.keys('\x1bOP'); // F1
  await ui.until((s) => /help/.test(s), 'help');
  const { helpScreen } = require('../../daemon/dist/ui.js');
  assert.match(helpScreen(v), /squelched[^\n]*(withheld|similar)/);
  await ui.quit();
});

test('the events pane: select a row, filter by its application, verdict or direction, and make a rule from it', async () => {
  const ui = await console_({ privileged: true });
  ui.addon.emit(event({ verdict: VAL('block'), reason: REASON('rule'), rpath: '/usr/bin/', rprot: PROT('any'), path: '/usr/bin/nc' }));
  ui.addon.emit(event({ verdict: VAL('allow'), reason: REASON('rule'), rpath: '/usr/bin/ssh', rprot: PROT('tcp'), path: '/usr/bin/ssh', dir: DIR('in') }));
  ui.addon.emit(event({ verdict: VAL('block'), reason: REASON('rule'), rpath: '/usr/bin/', rprot: PROT('any'), path: '/usr/bin/wget', prot: PROT('udp') }));
  await ui.until((s) => /wget/.test(s), 'the events');
  const eventsPane = () => ui.screen().split('rules (')[0];
  await ui.keys('\x1b[17~'); // F6: the events pane, the newest row selected
  await ui.keys('\x1b[A'); // Up: ssh
  await ui.keys('d'); // only its direction (in)
  await ui.until(() => !/wget|nc /.test(eventsPane()) && /ssh/.test(eventsPane()), 'only inbound events');
  assert.match(eventsPane(), /only dir in/);
  await ui.keys('d', 'v'); // all directions; then only the selected row's verdict (allow)
  await ui.until(() => /only verdict allow/.test(eventsPane()) && !/wget/.test(eventsPane()), 'only allowed events');
  await ui.keys('x', '\x1b[F'); // all events again; End: the newest (wget)
  await ui.until(() => /wget/.test(eventsPane()) && /nc /.test(eventsPane()), 'every event again');
  await ui.keys('\x1b[B', 'f');
  await ui.until(() => /only app wget/.test(eventsPane()) && !/ssh|nc /.test(eventsPane()), 'only wget');
  await ui.keys('b');
  await ui.until((s) => /vordr> block udp \/usr\/bin\/wget/.test(s), 'the rule on the command line');
  await ui.keys(...'for 1h', '\r');
  await ui.until(() => rules(ui.addon).length === 1, 'the rule made');
  assert.deepEqual([rules(ui.addon)[0].path, rules(ui.addon)[0].verdict, rules(ui.addon)[0].prot, rules(ui.addon)[0].timeout], ['/usr/bin/wget', VAL('block'), PROT('udp'), 3600]);
  await ui.keys('\x1b[17~', '\x1b[17~', '\x1b[17~', '\x1b[F'); // the output pane, its end
  await ui.until((s) => /added: block udp \/usr\/bin\/wget for 1h/.test(s), 'its confirmation line');
  await ui.quit();
});

test("the header shows events lost: the module's evdrops and this console's socket", async () => {
  const ui = await console_({ privileged: false });
  ui.addon.flags.set(FLAG('evdrops'), 7n);
  ui.addon.emit({ lost: true, overruns: 1, drops: 5 });
  const s = await ui.until((x) => /lost 12 \(module 7, this console 5\)/.test(x.split('\n')[0]), 'the loss in the header');
  assert.ok(s);
  await ui.quit();
});
