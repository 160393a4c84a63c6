// Boot-time policy: the module, loaded by modprobe with the static options
// of the packaged /etc/modprobe.d/vordr.conf (packaging/modprobe.conf:
// mode=enabled unkrule=block), is closed from the moment it loads, before
// any daemon has run, whatever the saved policy holds; `vordr --load-policy`
// then loads the saved policy (the policy file the daemon derives from the
// rules file whenever it saves it), and `vordr --service` keeps it.
//
// The modprobe.d file is written in the VM's tmpfs overlay. In the dkms flavor
// (VORDR_LOAD=modprobe) modprobe loads the module DKMS installed in
// /lib/modules/$(uname -r)/updates/dkms; in the others, the module under test
// ($VORDR_KO) is staged in a module tree of its own (modprobe -d), so the
// same modprobe.d path is exercised. Afterwards the module is loaded again
// the way guest.sh loaded it, without the file.
//
// vm-flavors: stock (test/vm/run.sh: not run on the debug kernel in CI:
// the daemon's boot path (modprobe.d, --load-policy, --service) on Debian's
// kernel; the module's side of it, the policy transaction, runs on the debug
// kernel in policy.test.mjs.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  mkdtempSync, mkdirSync, writeFileSync, readFileSync, existsSync, copyFileSync,
  chmodSync, rmSync, readdirSync, realpathSync,
} from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

const name = process.env.VORDR_MODULE || 'vordr';
const viaModprobe = process.env.VORDR_LOAD === 'modprobe';
const repo = process.env.VORDR_REPO ?? new URL('../..', import.meta.url).pathname;
const cli = join(repo, 'daemon', 'dist', 'cli.js');
const conf = '/etc/modprobe.d/vordr.conf';
const packaged = join(repo, 'packaging', 'modprobe.conf');
const work = mkdtempSync(join(tmpdir(), 'vordr-boot-'));
chmodSync(work, 0o755);
const curl = realpathSync('/usr/bin/curl');
const python = realpathSync('/usr/bin/python3');
const kver = spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim();

let port;
let server;
let savedConf = null;
let modroot = null;   // the staged module tree, when not the dkms flavor

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000, ...opts });
  return { code: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
}

function loaded() {
  return existsSync(`/sys/module/${name}`);
}

function unload() {
  if (!loaded()) return;
  const r = run('rmmod', [name]);
  assert.equal(r.code, 0, `rmmod ${name}: ${r.err}`);
}

// modprobe the module with whatever /etc/modprobe.d says; returns the insmod
// line modprobe ran, which names the file and the options it passed.
function modprobe() {
  unload();
  const args = modroot ? ['-v', '-d', modroot, name] : ['-v', name];
  const r = run('modprobe', args);
  assert.equal(r.code, 0, `modprobe ${args.join(' ')}: ${r.out}${r.err}`);
  assert.ok(loaded(), `${name} is loaded after modprobe`);
  const line = r.out.split('\n').find((l) => l.startsWith('insmod ')) ?? '';
  const where = modroot ? `${modroot}/lib/modules/${kver}/` : `/lib/modules/${kver}/updates/dkms/`;
  assert.ok(line.startsWith(`insmod ${where}`), `modprobe loaded ${name} from ${where}: '${line}'`);
  return line;
}

// Install the packaged modprobe.d file (or one of options) and load the module.
function boot(options) {
  if (options === undefined) copyFileSync(packaged, conf);
  else writeFileSync(conf, `# written by test/vm/boot.test.mjs\noptions ${name} ${options}\n`);
  const line = modprobe();
  const want = options ?? readFileSync(packaged, 'utf8').split('\n').find((l) => l.startsWith('options '))
    .replace(/^options \S+ /, '').trim();
  assert.ok(line.trimEnd().endsWith(want),
    `modprobe passed the options of ${conf} (${want}): '${line}'`);
  // Nothing but the module decides: no vordr daemon runs.
  const daemons = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try { return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('cli.js\0--service'); } catch { return false; }
  });
  assert.deepEqual(daemons, [], 'no vordr --service is running');
  return line;
}

function get(exe) {
  return run(exe, ['-s', '-o', '/dev/null', '--connect-timeout', '2', '--max-time', '5',
    `http://127.0.0.1:${port}/`]);
}

function pythonGet() {
  return run(python, ['-c',
    `import urllib.request; urllib.request.urlopen('http://127.0.0.1:${port}/', timeout=5).read()`]);
}

function assertBlocked(r, what) {
  // curl 28: connect timeout (the SYN was dropped); 7: refused with EPERM.
  assert.ok(r.code === 28 || r.code === 7, `${what} is blocked (exit ${r.code}: ${r.err})`);
}

before(async () => {
  if (existsSync(conf)) savedConf = readFileSync(conf, 'utf8');
  if (!viaModprobe) {
    // Stage $VORDR_KO as the only module of a tree modprobe -d can use.
    assert.ok(process.env.VORDR_KO && existsSync(process.env.VORDR_KO), 'VORDR_KO names the module');
    modroot = join(work, 'modroot');
    const dir = join(modroot, 'lib', 'modules', kver);
    mkdirSync(join(dir, 'extra'), { recursive: true });
    for (const f of ['modules.order', 'modules.builtin', 'modules.builtin.modinfo']) writeFileSync(join(dir, f), '');
    copyFileSync(process.env.VORDR_KO, join(dir, 'extra', `${name}.ko`));
    const d = run('depmod', ['-b', modroot, kver]);
    assert.equal(d.code, 0, `depmod -b ${modroot}: ${d.err}`);
  }
  const portFile = join(work, 'port');
  server = spawn(python, ['-c', `
import http.server
s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), http.server.SimpleHTTPRequestHandler)
open(${JSON.stringify(portFile)}, 'w').write(str(s.server_address[1]))
s.serve_forever()
`], { cwd: work, stdio: 'ignore' });
  // Generous: under the debug kernel a cold python takes over 10 s to start.
  const end = Date.now() + 60_000;
  while (!(existsSync(portFile) && readFileSync(portFile, 'utf8'))) {
    assert.ok(Date.now() < end, 'the test server started');
    await new Promise((r) => setTimeout(r, 100));
  }
  port = Number(readFileSync(portFile, 'utf8'));
});

after(() => {
  server?.kill('SIGKILL');
  if (savedConf === null) rmSync(conf, { force: true });
  else writeFileSync(conf, savedConf);
  // Back to the module guest.sh loaded, without the test's parameters.
  if (loaded()) run('rmmod', [name]);
  const r = viaModprobe ? run('modprobe', [name]) : run('insmod', [process.env.VORDR_KO]);
  if (r.code !== 0) console.error(`reloading ${name} failed: ${r.out}${r.err}`);
});

test('without a policy in modprobe.d, curl and python connect (control)', () => {
  rmSync(conf, { force: true });
  const line = modprobe();
  assert.ok(!/ rules=| unkrule=/.test(line), `no options passed: '${line}'`);
  assert.equal(get(curl).code, 0, 'curl connects');
  assert.equal(pythonGet().code, 0, 'python connects');
});

test('the packaged modprobe.d loads the module closed: every program is refused until the policy loads', (t) => {
  t.diagnostic(boot());
  assert.equal(readFileSync(`/sys/module/${name}/parameters/unkrule`, 'utf8').trim(), 'block');
  assert.equal(readFileSync(`/sys/module/${name}/parameters/mode`, 'utf8').trim(), 'enabled');
  assertBlocked(get(curl), 'curl (no policy yet)');
  assert.notEqual(pythonGet().code, 0, 'python (no policy yet) is refused');
  const q = run(process.execPath, [cli], { input: 'query\n' });
  assert.equal(q.code, 0, `vordr query: ${q.out}${q.err}`);
  assert.match(q.out, /^policy: none$/m, 'query says no policy was loaded');
});

test('a stale modprobe.d line with the old rules= parameter still loads the module: the policy never fails a load', (t) => {
  const many = Array.from({ length: 60 }, (_, i) => `block:tcp:/opt/vordr-boot/app-${i}`).join(',');
  assert.ok(many.length > 1023, 'longer than the kernel takes for a string parameter');
  writeFileSync(conf, `options ${name} mode=enabled unkrule=block rules=${many}\n`);
  const line = modprobe();
  t.diagnostic(line.slice(0, 120));
  assert.equal(readFileSync(`/sys/module/${name}/parameters/unkrule`, 'utf8').trim(), 'block');
  assert.ok(!existsSync(`/sys/module/${name}/parameters/rules`), 'the module has no rules parameter');
});

test('the daemon derives the policy file when it saves; a closed boot then loads it with --load-policy, and vordr --service keeps it', async (t) => {
  rmSync(conf, { force: true });
  modprobe();
  const rules = join(work, 'rules');
  const policy = join(work, 'lib', 'policy');
  const cmds = join(work, 'save.vordr');
  writeFileSync(cmds, `block tcp ${curl}\nsave\n`);
  const files = ['-r', rules, '--policy-file', policy];
  const s = run(process.execPath, [cli, ...files, '-f', cmds]);
  assert.equal(s.code, 0, `vordr -f: ${s.out}${s.err}`);
  assert.match(readFileSync(rules, 'utf8'), new RegExp(`^block tcp ${curl}$`, 'm'));
  assert.ok(existsSync(policy), `save derived ${policy}`);
  const before = readFileSync(policy);

  // The next boot: closed, from the packaged file; nothing passes.
  boot();
  assertBlocked(get(curl), 'curl, before the policy');
  assert.notEqual(pythonGet().code, 0, 'python, before the policy');
  const l = run(process.execPath, [cli, ...files, '--load-policy']);
  t.diagnostic(l.out.trim());
  assert.equal(l.code, 0, `vordr --load-policy: ${l.out}${l.err}`);
  assert.doesNotMatch(l.out, /derived again/, 'the saved file is current');
  assert.deepEqual(readFileSync(policy), before, 'and left as it was');
  assertBlocked(get(curl), 'curl, blocked by the saved rule');
  assert.equal(pythonGet().code, 0, 'python connects (the saved unkrule is allow)');

  // The service starts from the rules file and keeps the policy.
  const svc = spawn(process.execPath, [cli, '--service', ...files], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  svc.stdout.on('data', (d) => { out += d; });
  svc.stderr.on('data', (d) => { err += d; });
  const exited = new Promise((r) => svc.on('exit', (code, sig) => r({ code, sig })));
  try {
    // Until the service reports curl's blocked connection as an event.
    const end = Date.now() + 60_000;
    let c;
    do {
      c = get(curl);
      assertBlocked(c, 'curl, with the service running');
      await new Promise((r) => setTimeout(r, 500));
    } while (!out.includes(curl) && Date.now() < end && svc.exitCode === null);
    assert.ok(out.includes(curl), `vordr --service reported curl's blocked connection (stdout: ${out.slice(0, 500)} stderr: ${err})`);
    assert.equal(pythonGet().code, 0, 'python connects with the service running');
  } finally {
    svc.kill('SIGTERM');
  }
  const x = await exited;
  assert.equal(x.code, 0, `vordr --service exits 0 on SIGTERM (${JSON.stringify(x)}; ${err})`);
});
