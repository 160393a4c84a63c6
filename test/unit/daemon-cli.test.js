'use strict';
// vordr's command line: options, exit codes, stdin scripts and the line
// console, driven through main() with injected streams and a FAKE addon
// (daemon/test/fixture.js).  Needs `npx tsc -p tsconfig.json` first.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { PassThrough, Readable } = require('node:stream');
const { execFileSync, spawnSync } = require('node:child_process');
const { ok, err } = require('neverthrow');
const { fakeAddon, sink, ROOT } = require('../../daemon/test/fixture.js');
const { main, EXIT, OPTIONS } = require('../../daemon/dist/cli.js');
const { PROMPT } = require('../../daemon/dist/console.js');

const CLI = path.join(ROOT, 'daemon', 'dist', 'cli.js');

function stdinOf(text, isTTY = false) {
  const s = Readable.from([Buffer.from(text)]);
  s.isTTY = isTTY;
  return s;
}

async function run(argv, { stdin = stdinOf(''), addon = fakeAddon(), cwd, privileged = true, stopService } = {}) {
  const stdout = sink();
  const stderr = sink();
  const dir = cwd ?? fs.mkdtempSync(path.join(os.tmpdir(), 'vordr-cli-test-'));
  const code = await main({
    argv, stdin, stdout, stderr,
    loadAddon: () => (addon ? ok(addon) : err({ kind: 'addon-missing', path: '/x/addon', message: 'Cannot find module' })),
    cwd: dir,
    rulesFile: path.join(dir, 'rules'),
    policyFile: path.join(dir, 'policy'),
    privileged,
    ...(stopService ? { stopService } : {}),
  });
  return { code, out: stdout.text, err: stderr.text, addon, dir };
}

test('the exit codes are 0 ok, 1 failed lines, 2 usage, 3 not loaded, 4 schema, 5 addon, 6 internal, 7 policy not loaded', () => {
  assert.deepEqual(EXIT, { ok: 0, failed: 1, usage: 2, notLoaded: 3, schema: 4, addon: 5, internal: 6, policy: 7 });
});

test('--help prints every option of the options table and exits 0', async () => {
  const r = await run(['--help']);
  assert.equal(r.code, 0);
  for (const [name, o] of Object.entries(OPTIONS)) {
    assert.ok(r.out.includes(`--${name}`), name);
    if (o.short) assert.ok(r.out.includes(`-${o.short}, --${name}`), name);
  }
  assert.deepEqual(r.addon.calls, [], '--help does not touch the module');
});

test('--version prints the package version and exits 0', async () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const r = await run(['-V']);
  assert.equal(r.code, 0);
  assert.equal(r.out, `vordr ${pkg.version}\n`);
});

test('an unknown option or a stray argument is a usage error (exit 2) with one line saying what to do', async () => {
  for (const argv of [['--bogus'], ['extra'], ['-f']]) {
    const r = await run(argv);
    assert.equal(r.code, 2, argv.join(' '));
    assert.match(r.err, /^vordr: .*'vordr --help' lists the options\n$/);
  }
});

test('an unreadable command file is a usage error (exit 2) and the module is not touched', async () => {
  const r = await run(['-f', 'nosuch.rules']);
  assert.equal(r.code, 2);
  assert.match(r.err, /^vordr: cannot read .*nosuch\.rules: no such file or directory; check the -f FILE argument\n$/);
  assert.deepEqual(r.addon.calls, []);
});

test('a missing native addon exits 5 and says how to build it', async () => {
  const r = await run(['-f', '-'], { stdin: stdinOf('query\n'), addon: null });
  assert.equal(r.code, 5);
  assert.match(r.err, /^vordr: the native addon cannot be loaded .*; build it with 'npm run build'\n$/);
});

test('a module that is not loaded exits 3 and says how to load it', async () => {
  const r = await run([], { stdin: stdinOf('query\n'), addon: fakeAddon({ notLoaded: true }) });
  assert.equal(r.code, 3);
  assert.equal(r.err, "vordr: the vordr kernel module is not loaded; load it with 'modprobe vordr' (or 'sudo make -C kmod load' in the source tree)\n");
});

test('a module built from another schema exits 4 and says to rebuild it', async () => {
  const r = await run([], { stdin: stdinOf('query\n'), addon: fakeAddon({ helloSchema: 1 }) });
  assert.equal(r.code, 4);
  assert.match(r.err, /^vordr: module built from another schema version .*rebuild\/reload it\n$/);
});

test('-f FILE runs the file and exits 0 when every line succeeds', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vordr-cli-test-'));
  fs.writeFileSync(path.join(dir, 'ok.rules'), '# rules\nallow tcp /usr/bin/curl\n\nquery\n');
  const r = await run(['-f', 'ok.rules'], { cwd: dir });
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, 'mode: enabled\npolicy: none\nallow tcp /usr/bin/curl  packets=0 bytes=0 last=never\n');
  assert.equal(r.err, '');
  assert.equal(r.addon.connection.closed, true);
});

test('-f FILE with failed lines reports each as FILE:LINE and exits 1', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vordr-cli-test-'));
  fs.writeFileSync(path.join(dir, 'bad.rules'), 'allow /a\nallow tcp\nblock /b\nclear /nosuch\n');
  const r = await run(['--file', 'bad.rules'], { cwd: dir });
  assert.equal(r.code, 1);
  assert.match(r.err, /^bad\.rules:2: error: allow: missing PATH after protocol 'tcp'/m);
  assert.match(r.err, /^bad\.rules:4: error: no rule for \/nosuch$/m);
  assert.equal(r.addon.rules.size, 2);
});

test('commands piped on standard input run as a script', async () => {
  const r = await run([], { stdin: stdinOf('allow udp /bin/ping\nget mode\nnope\n') });
  assert.equal(r.code, 1);
  assert.equal(r.out, 'mode: enabled\n');
  assert.match(r.err, /^<stdin>:3: error: unknown command 'nope'/m);
  assert.equal(r.addon.rules.size, 1);
});

test('-f - reads the script from standard input even on a terminal', async () => {
  const r = await run(['-f', '-'], { stdin: stdinOf('get mode\n', true) });
  assert.equal(r.code, 0);
  assert.equal(r.out, 'mode: enabled\n');
});

test('on a terminal, the console prompts, prints errors, goes on, and quit leaves', async () => {
  const stdin = new PassThrough();
  stdin.isTTY = true;
  const pending = run([], { stdin });
  stdin.write('allow /a\n');
  stdin.write('allow nope\n');
  stdin.write('get mode\n');
  stdin.write('quit\n');
  stdin.write('allow /never\n');
  const r = await pending;
  assert.equal(r.code, 0);
  assert.ok(r.out.startsWith(PROMPT));
  assert.match(r.out, /mode: enabled/);
  assert.equal(r.err, "error: relative path nope; PATH must be absolute (start with /)\n");
  assert.deepEqual([...r.addon.rules.values()].map((x) => x.path), ['/a']);
});

test('the console leaves at end of input and on disconnect', async () => {
  for (const text of ['allow /a\n', 'allow /a\ndisconnect\nallow /b\n', 'allow /a\nbye\nallow /b\n']) {
    const stdin = new PassThrough();
    stdin.isTTY = true;
    const pending = run([], { stdin });
    stdin.end(text);
    const r = await pending;
    assert.equal(r.code, 0);
    assert.deepEqual([...r.addon.rules.values()].map((x) => x.path), ['/a']);
  }
});

test('the compiled cli.js starts with a shebang and runs as a program', () => {
  assert.ok(fs.readFileSync(CLI, 'utf8').startsWith('#!/usr/bin/env node\n'));
  const out = execFileSync(process.execPath, [CLI, '--version'], { encoding: 'utf8' });
  assert.match(out, /^vordr \d+\.\d+\.\d+/);
});

test('requiring cli.js does not run main', () => {
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(CLI)})`], { encoding: 'utf8', input: '' });
  assert.equal(r.status, 0);
  assert.equal(r.stdout + r.stderr, '');
});

// ---------------------------------------------------------------- one schema (issue 12, item 7)

test('the platform numbers the daemon needs come from the addon (system headers), not from TypeScript', () => {
  const { schema } = require('../../daemon/test/fixture.js');
  const p = schema().platform;
  assert.ok(p, 'addon.schema.platform');
  for (const n of [p.af.inet, p.af.inet6, p.cap.net_admin]) assert.ok(Number.isInteger(n) && n > 0);
  assert.notEqual(p.af.inet, p.af.inet6);
  const { hasNetAdmin } = require('../../daemon/dist/cli.js');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vordr-cli-cap-'));
  const status = path.join(dir, 'status');
  const caps = (bit) => fs.writeFileSync(status, `Name:\tnode\nCapEff:\t${(1n << BigInt(bit)).toString(16).padStart(16, '0')}\n`);
  caps(p.cap.net_admin);
  assert.equal(hasNetAdmin(p.cap.net_admin, status), true);
  caps(p.cap.net_admin + 1);
  assert.equal(hasNetAdmin(p.cap.net_admin, status), false);
  // No daemon source writes the numbers itself.
  const src = fs.readdirSync(path.join(ROOT, 'daemon', 'src')).map((f) => fs.readFileSync(path.join(ROOT, 'daemon', 'src', f), 'utf8')).join('\n');
  assert.doesNotMatch(src, /af === 10|>> 12n|BOOT_FLAGS/);
});

test('an event\'s address family is read with the addon\'s AF_INET6', () => {
  const { schema } = require('../../daemon/test/fixture.js');
  const { decodeEvent } = require('../../daemon/dist/events.js');
  const { vocabulary } = require('../../daemon/dist/vocab.js');
  const S = schema();
  const v = vocabulary(S);
  const base = { verdict: S.constants.value.allow.value, reason: 0, dir: 0, prot: S.constants.prot.tcp.value, sport: 1, dport: 2 };
  const six = decodeEvent({ ...base, af: S.platform.af.inet6, saddr: new Uint8Array(16), daddr: new Uint8Array(16) }, v);
  const four = decodeEvent({ ...base, af: S.platform.af.inet, saddr: new Uint8Array(4), daddr: new Uint8Array(4) }, v);
  assert.equal(six.ip, 6);
  assert.equal(four.ip, 4);
});
