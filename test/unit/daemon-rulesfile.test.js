'use strict';
// The rules file is the user's (SPEC section 2, issue 12): what a console's
// save keeps, how two consoles (two runners, two processes) save at once, a
// full disk, and which rules are never saved.  Driven through the fake addon
// (daemon/test/fixture.js): the daemon's own logic only.  Needs
// `npx tsc -p tsconfig.json` first.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { fakeAddon, sink } = require('../../daemon/test/fixture.js');
const { Kernel } = require('../../daemon/dist/kernel.js');
const { Runner, describeLineError } = require('../../daemon/dist/script.js');
const { vocabulary } = require('../../daemon/dist/vocab.js');
const { parsePolicy, crc32 } = require('../../daemon/dist/policy.js');

function tmpdir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'vordr-rulesfile-test-'));
}

async function consoleRunner({ addon = fakeAddon(), dir = tmpdir(), file = path.join(dir, 'rules'), confirm } = {}) {
  const k = (await Kernel.connect(addon))._unsafeUnwrap();
  const out = sink();
  const err = sink();
  const runner = new Runner({
    kernel: k, vocab: vocabulary(addon.schema), out, err, cwd: dir,
    rulesFile: file, policyFile: path.join(dir, 'policy'), autosave: true,
    ...(confirm ? { confirm } : {}),
  });
  return { addon, runner, out, err, dir, file, read: () => fs.readFileSync(file, 'utf8') };
}

async function line(runner, text) {
  const r = await runner.runLine(text);
  assert.ok(r.isOk(), `${text}: ${r.isErr() ? describeLineError(r.error) : ''}`);
  return r.value;
}

const HAND = [
  '# my rules, kept by hand',
  '',
  'set squelch disabled',
  'allow tcp /usr/bin/curl   # the browser of the shell',
  'allow tcp relative/path',
  'allow sctp /opt/vordr-test/old',
  '',
  '# servers',
  'block udp /opt/vordr-test/srv',
  '',
].join('\n');

test('a console change keeps every comment, blank line, failed line and flag of the file, and appends the new rule', async () => {
  const t = await consoleRunner();
  fs.writeFileSync(t.file, HAND);
  await t.runner.runFile(t.file);
  await line(t.runner, 'allow udp /opt/vordr-test/new');
  assert.equal(t.read(), `${HAND}allow udp /opt/vordr-test/new\n`);
  // The derived policy carries the flags the file sets: squelch, which a
  // hand-kept list of boot flags used to drop.
  const v = vocabulary(t.addon.schema);
  const pol = parsePolicy(fs.readFileSync(path.join(t.dir, 'policy')), v)._unsafeUnwrap();
  const squelch = pol.records.find((r) => r.kind === 'flag' && r.flag === v.flag('squelch').id);
  assert.equal(squelch.value, BigInt(v.value('disabled')));
  assert.equal(pol.header.source, crc32(fs.readFileSync(t.file)), 'derived from the file as written');
});

test('a rule retyped from the console replaces its own line in place; a removed rule loses its line', async () => {
  const t = await consoleRunner();
  fs.writeFileSync(t.file, HAND);
  await t.runner.runFile(t.file);
  await line(t.runner, 'block tcp /usr/bin/curl');
  assert.equal(t.read(), HAND.replace('allow tcp /usr/bin/curl   # the browser of the shell', 'block tcp /usr/bin/curl'));
  await line(t.runner, 'clear udp /opt/vordr-test/srv');
  assert.doesNotMatch(t.read(), /srv/);
  assert.match(t.read(), /^# servers$/m, 'the comment stays');
  await line(t.runner, 'set squelch enabled');
  assert.match(t.read(), /^set squelch enabled$/m);
  assert.doesNotMatch(t.read(), /squelch disabled/);
  assert.match(t.read(), /^allow sctp \/opt\/vordr-test\/old$/m, 'a line that failed to load stays');
  assert.match(t.read(), /^allow tcp relative\/path$/m, 'a line that failed to load stays');
});

test('save keeps the file\'s own words too, and a flag set there follows the module', async () => {
  const t = await consoleRunner();
  fs.writeFileSync(t.file, HAND);
  await t.runner.runFile(t.file);
  const set = t.addon.schema.flags.squelch;
  t.addon.flags.set(set.id, 1n);
  await line(t.runner, 'save');
  assert.equal(t.read(), HAND.replace('set squelch disabled', 'set squelch enabled'));
});

test('two consoles saving at once: no false error, every rule in the file, no temporary file left', async () => {
  const dir = tmpdir();
  const file = path.join(dir, 'rules');
  fs.writeFileSync(file, '# shared\n');
  const a = await consoleRunner({ dir, file });
  const b = await consoleRunner({ dir, file });
  const N = 25;
  const results = await Promise.all(
    Array.from({ length: N }, (_, i) => [a.runner.runLine(`allow tcp /opt/vordr-test/a${i}`), b.runner.runLine(`block udp /opt/vordr-test/b${i}`)]).flat(),
  );
  for (const r of results) assert.ok(r.isOk(), r.isErr() ? describeLineError(r.error) : '');
  const text = fs.readFileSync(file, 'utf8');
  const lines = text.trimEnd().split('\n');
  assert.equal(lines[0], '# shared');
  for (let i = 0; i < N; i++) {
    assert.ok(lines.includes(`allow tcp /opt/vordr-test/a${i}`), `a${i} lost`);
    assert.ok(lines.includes(`block udp /opt/vordr-test/b${i}`), `b${i} lost`);
  }
  assert.equal(lines.length, 1 + 2 * N, 'no line twice, none mixed');
  assert.deepEqual(fs.readdirSync(dir).sort(), ['policy', 'rules'], 'no temporary or lock file left');
});

test('two processes saving at once: no false error, every rule in the file', async () => {
  const dir = tmpdir();
  const file = path.join(dir, 'rules');
  const N = 30;
  const child = `
    const path = require('node:path');
    const { fakeAddon, sink } = require(${JSON.stringify(path.join(__dirname, '..', '..', 'daemon', 'test', 'fixture.js'))});
    const { Kernel } = require(${JSON.stringify(path.join(__dirname, '..', '..', 'daemon', 'dist', 'kernel.js'))});
    const { Runner, describeLineError } = require(${JSON.stringify(path.join(__dirname, '..', '..', 'daemon', 'dist', 'script.js'))});
    const { vocabulary } = require(${JSON.stringify(path.join(__dirname, '..', '..', 'daemon', 'dist', 'vocab.js'))});
    (async () => {
      const addon = fakeAddon();
      const k = (await Kernel.connect(addon))._unsafeUnwrap();
      const runner = new Runner({ kernel: k, vocab: vocabulary(addon.schema), out: sink(), err: sink(),
        rulesFile: ${JSON.stringify(file)}, policyFile: ${JSON.stringify(path.join(dir, 'policy'))}, autosave: true });
      let bad = 0;
      for (let i = 0; i < ${N}; i++) {
        const r = await runner.runLine('allow tcp /opt/vordr-test/child' + i);
        if (r.isErr()) { bad++; process.stderr.write(describeLineError(r.error) + '\\n'); }
      }
      process.exit(bad ? 1 : 0);
    })();`;
  const t = await consoleRunner({ dir, file });
  const proc = spawn(process.execPath, ['-e', child], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr += d));
  const done = new Promise((resolve) => proc.on('exit', resolve));
  const mine = [];
  for (let i = 0; i < N; i++) mine.push(await t.runner.runLine(`block udp /opt/vordr-test/parent${i}`));
  const code = await done;
  assert.equal(code, 0, `the child had errors: ${stderr}`);
  for (const r of mine) assert.ok(r.isOk(), r.isErr() ? describeLineError(r.error) : '');
  const lines = fs.readFileSync(file, 'utf8').trimEnd().split('\n').filter((l) => !l.startsWith('#'));
  for (let i = 0; i < N; i++) {
    assert.ok(lines.includes(`allow tcp /opt/vordr-test/child${i}`), `child${i} lost`);
    assert.ok(lines.includes(`block udp /opt/vordr-test/parent${i}`), `parent${i} lost`);
  }
  assert.equal(lines.length, 2 * N);
});

test('temporary rules (for TIME, until exit, until reboot) are never saved; query prints them back as valid lines', async () => {
  const t = await consoleRunner();
  await line(t.runner, 'allow tcp /opt/vordr-test/t1 for 5m');
  await line(t.runner, 'allow tcp /opt/vordr-test/t2 until exit');
  await line(t.runner, 'allow tcp /opt/vordr-test/t3 until reboot');
  await line(t.runner, 'allow tcp /opt/vordr-test/keep');
  await line(t.runner, 'save');
  const text = t.read();
  assert.match(text, /^allow tcp \/opt\/vordr-test\/keep$/m);
  assert.doesNotMatch(text, /\/t[123]/);
  const v = vocabulary(t.addon.schema);
  const pol = parsePolicy(fs.readFileSync(path.join(t.dir, 'policy')), v)._unsafeUnwrap();
  assert.deepEqual(pol.records.filter((r) => r.kind === 'rule').map((r) => r.path), ['/opt/vordr-test/keep'], 'the derived policy holds lasting rules only');
  const sent = t.addon.calls.filter((c) => c.command === 'rule_add').map((c) => c.attrs);
  assert.equal(sent.find((a) => a.path.endsWith('/t1')).timeout, 300, 'for 5m is the kernel\'s timeout');
  const before = t.out.text.length;
  await line(t.runner, 'query');
  assert.match(t.out.text.slice(before), /^allow tcp \/opt\/vordr-test\/t1 for 300s  packets=/m);
});

test('save FILE writes only lasting rules', async () => {
  const t = await consoleRunner();
  await line(t.runner, 'block tcp /opt/vordr-test/t1 for 1h');
  await line(t.runner, 'block tcp /opt/vordr-test/keep');
  await line(t.runner, 'save other.rules');
  const text = fs.readFileSync(path.join(t.dir, 'other.rules'), 'utf8');
  assert.match(text, /^block tcp \/opt\/vordr-test\/keep$/m);
  assert.doesNotMatch(text, /t1/);
});

// A full disk, for real: a 64 KiB tmpfs in a private mount namespace
// (unshare -Urm, as an unprivileged user may), filled before the save.
const canTmpfs = spawnSync('unshare', ['-Urm', 'sh', '-c', 'mount -t tmpfs -o size=64k tmpfs /mnt'], { stdio: 'ignore' }).status === 0;

test('a full disk (ENOSPC on a tiny tmpfs) says once, plainly, that the rule is in force but not saved', { skip: canTmpfs ? false : 'unshare -Urm cannot mount a tmpfs here' }, () => {
  const dir = tmpdir();
  const script = `
    const fs = require('node:fs');
    const { fakeAddon, sink } = require(${JSON.stringify(path.join(__dirname, '..', '..', 'daemon', 'test', 'fixture.js'))});
    const { Kernel } = require(${JSON.stringify(path.join(__dirname, '..', '..', 'daemon', 'dist', 'kernel.js'))});
    const { Runner, describeLineError } = require(${JSON.stringify(path.join(__dirname, '..', '..', 'daemon', 'dist', 'script.js'))});
    const { vocabulary } = require(${JSON.stringify(path.join(__dirname, '..', '..', 'daemon', 'dist', 'vocab.js'))});
    (async () => {
      fs.writeFileSync('/mnt/rules', '# kept\\nallow tcp /opt/vordr-test/old\\n');
      try { fs.writeFileSync('/mnt/fill', Buffer.alloc(1 << 20)); } catch (e) { if (e.code !== 'ENOSPC') throw e; }
      const addon = fakeAddon();
      const k = (await Kernel.connect(addon))._unsafeUnwrap();
      const out = sink(), err = sink();
      const runner = new Runner({ kernel: k, vocab: vocabulary(addon.schema), out, err,
        rulesFile: '/mnt/rules', policyFile: '/mnt/policy', autosave: true });
      const r = await runner.runLine('allow tcp /opt/vordr-test/new');
      const result = {
        ok: r.isOk(), kind: r.isErr() ? r.error.error.kind : null, message: r.isErr() ? describeLineError(r.error) : null,
        rules: [...addon.rules.values()].map((x) => x.path), file: fs.readFileSync('/mnt/rules', 'utf8'),
        left: fs.readdirSync('/mnt').sort(), out: out.text, err: err.text,
      };
      process.stdout.write(JSON.stringify(result));
    })();`;
  fs.writeFileSync(path.join(dir, 'enospc.js'), script);
  const p = spawnSync('unshare', ['-Urm', 'sh', '-c', `mount -t tmpfs -o size=64k tmpfs /mnt && exec "${process.execPath}" "${path.join(dir, 'enospc.js')}"`], { encoding: 'utf8' });
  assert.equal(p.status, 0, p.stderr);
  const r = JSON.parse(p.stdout);
  assert.equal(r.ok, false);
  assert.equal(r.kind, 'not-saved');
  assert.match(r.message, /^the rule allow tcp \/opt\/vordr-test\/new is in force but not saved: cannot write \/mnt\/rules: no space left on device$/);
  assert.deepEqual(r.rules, ['/opt/vordr-test/new'], 'the kernel has the rule');
  assert.equal(r.file, '# kept\nallow tcp /opt/vordr-test/old\n', 'the old file is intact');
  assert.deepEqual(r.left, ['fill', 'rules'], 'no temporary or lock file left');
  assert.equal(r.err, '', 'said once: the console prints the returned error, nothing else');
});

test('a lock left by a console killed mid-save (its pid gone) is taken over', async () => {
  const t = await consoleRunner();
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
  fs.writeFileSync(`${t.file}.lock`, `${dead}\n`);
  await line(t.runner, 'allow tcp /opt/vordr-test/after-kill');
  assert.match(t.read(), /^allow tcp \/opt\/vordr-test\/after-kill$/m);
  assert.ok(!fs.existsSync(`${t.file}.lock`));
});
