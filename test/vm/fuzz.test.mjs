// The netlink fuzzer (test/vm/nlfuzz.c) against the loaded module: an
// unprivileged user's random and structure-aware messages (as itself, and
// as root of a user namespace of its own, with and without a network
// namespace) change no rule and no flag; root's leave nothing invalid; the
// kernel log stays clean; and the module still decides connections after.
// Counts: VORDR_FUZZ_UNPRIV (100000) and VORDR_FUZZ_ROOT (10000); the seed
// is printed (VORDR_FUZZ_SEED=0x... repeats a run).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  C, Kernel, assertKlogClean, bin, cli, killAll, klogMark, moduleName, repo, run, runAsync, schema,
  track, waitFor, workdir,
} from './util.mjs';

const W = workdir('fuzz');
const exe = join(W, 'nlfuzz');
const count = (name, dflt) => {
  const v = Number(process.env[name] ?? dflt);
  assert.ok(Number.isInteger(v) && v >= 0, `${name} must be a count, not ${process.env[name]}`);
  return v;
};
/** The attributes that qualify a rule, as RULE_LIST sends them (those the schema has). */
const QUALIFIER_ATTRS = ['qaddr', 'qplen', 'qside', 'qports', 'quser', 'qname'].filter((n) => n in schema.attrs);
const UNPRIV = count('VORDR_FUZZ_UNPRIV', 100_000);
const ROOT = count('VORDR_FUZZ_ROOT', 10_000);
const SEED = process.env.VORDR_FUZZ_SEED;
const nobody = 65534;
const lo4 = '127.0.0.1';
let k;
let http;
let httpPort;

/** nlfuzz ARGS, as root or (uid) an unprivileged user with no capabilities. */
function nlfuzz(args, { uid, timeout = 600_000 } = {}) {
  const argv = uid === undefined ? [exe, ...args]
    : ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--inh-caps=-all', exe, ...args];
  return runAsync(argv[0], argv.slice(1), { timeout });
}

/** One fuzz run (the n-th at once); asserts it passed and returns its summary figures. */
async function fuzz(t, what, args, opts, n = 0) {
  const seed = SEED ? ['--seed', `0x${(BigInt(SEED) + BigInt(n)).toString(16)}`] : [];
  const r = await nlfuzz(['fuzz', ...seed, ...args], opts);
  const lines = r.out.trim().split('\n');
  for (const l of lines) t.diagnostic(`${what}: ${l}`);
  assert.equal(r.code, 0, `nlfuzz ${what} failed (${r.code} ${r.signal ?? ''}):\n${r.out}\n${r.err}`);
  const done = lines.find((l) => l.startsWith('nlfuzz: done '));
  assert.ok(done, `no summary from nlfuzz ${what}:\n${r.out}`);
  return Object.fromEntries(done.slice('nlfuzz: done '.length).split(' ').map((kv) => {
    const [key, v] = kv.split('=');
    return [key, Number(v)];
  }));
}

/** The module's state as nlfuzz reads and checks it (exit 1 on anything invalid). */
async function dump(stable) {
  const r = await nlfuzz(['dump', ...(stable ? ['--stable'] : [])], { timeout: 60_000 });
  assert.equal(r.code, 0, `nlfuzz dump found the state invalid:\n${r.err}\n${r.out}`);
  return r.out;
}

/** The module's use count, from /proc/modules. */
function useCount() {
  const line = readFileSync('/proc/modules', 'utf8').split('\n').find((l) => l.split(' ')[0] === moduleName);
  return Number(line.split(' ')[2]);
}

/** `vordr query` (node starts slowly on the debug kernel: a long time limit). */
function query() {
  return runAsync(process.execPath, [cli], { input: 'query\n', timeout: 300_000 });
}

/** Every flag by name, through the addon. */
async function allFlags() {
  const out = {};
  for (const name of Object.keys(schema.flags)) out[name] = await k.flag(name);
  return out;
}

/** Everything a caller can read, timeouts aside (they count down). */
async function state() {
  const rules = (await k.rules()).map((r) => ({ ...r, timeout: r.timeout ? 'set' : 'none' }));
  const flags = await allFlags();
  for (const [name, f] of Object.entries(schema.flags)) if (!f.writable) delete flags[name];
  const q = await query();
  assert.equal(q.code, 0, `vordr query (${q.code} ${q.signal ?? ''}): ${q.out}${q.err}`);
  return {
    // vordr query writes a timeout as `for 42s`, the seconds left
    rules, flags, query: q.out.replace(/ for \d+s(?= |$)/gm, ' for Ss'), dump: await dump(true),
    uses: useCount(),
  };
}

function curlGet() {
  return run(bin.curl, ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--connect-timeout', '2',
    '--max-time', '5', `http://${lo4}:${httpPort}/`]);
}

before(async () => {
  // run.sh builds nlfuzz on the host into the share, beside the module (a
  // compiler in the VM takes minutes under emulation); else build it here.
  const built = join(dirname(process.env.VORDR_KO ?? '/mnt/out/x'), 'nlfuzz');
  if (existsSync(built)) {
    copyFileSync(built, exe);
    chmodSync(exe, 0o755);
  } else {
    const cc = run('gcc', ['-O1', '-Wall', '-Wextra', '-Werror', '-o', exe, join(repo, 'test', 'vm', 'nlfuzz.c')],
      { timeout: 600_000 });
    assert.equal(cc.code, 0, `gcc nlfuzz.c: ${cc.out}${cc.err}`);
  }
  k = await Kernel.open();
  await k.reset();
  const portFile = join(W, 'http-port');
  http = track(spawn(bin.python, ['-c', `
import http.server
s = http.server.ThreadingHTTPServer(('${lo4}', 0), http.server.SimpleHTTPRequestHandler)
open(${JSON.stringify(portFile)}, 'w').write(str(s.server_address[1]))
s.serve_forever()
`], { cwd: W, stdio: 'ignore' }));
  await waitFor(() => existsSync(portFile) && readFileSync(portFile, 'utf8').length > 0, 'the HTTP server', 60_000);
  httpPort = Number(readFileSync(portFile, 'utf8'));
});

after(async () => {
  killAll();
  if (k) {
    await k.reset();
    k.close();
  }
});

test(`an unprivileged user's ${UNPRIV} random and structure-aware netlink messages change no rule and no flag`, async (t) => {
  const mark = klogMark();
  // A table and flags unlike the defaults, so a reset or a change shows.
  const long = `/nlfuzz/long/${'l'.repeat(schema.attrs.path.hi - 40)}`;
  await k.add('allow', 'any', '/nlfuzz/base/allowed');
  await k.add('block', 'tcp', '/nlfuzz/base/allowed');
  await k.add('block', 'udp', '/nlfuzz/dir/');
  await k.add('allow', 'icmp', '/nlfuzz/odd \t"\\\u00e9%41/x');
  await k.add('block', 'any', long);
  await k.add('allow', 'tcp', '/nlfuzz/expires', { timeout: 30 * 24 * 3600 });
  // Long paths, so that RULE_LIST spans pages (a page is its skb's tailroom,
  // about 32 KiB): cursors to send back and forge.
  for (let i = 0; i < 8; i++) await k.add(i % 2 ? 'allow' : 'block', 'udp', `${long}/${i}`);
  for (const [name, f] of Object.entries(schema.flags)) {
    const other = f.writable && f.allowed.find((v) => C.value[v] !== f.default);
    // mode stays enabled: block would drop the VM's own loopback traffic
    if (other && name !== 'mode') await k.set(name, other);
  }
  const before = await state();
  t.diagnostic(`before: ${before.rules.length} rules, flags ${JSON.stringify(before.flags)}, module uses ${before.uses}`);
  assert.equal(before.rules.length, 14);
  // the unprivileged view is the same as root's
  const asNobody = await nlfuzz(['dump', '--stable'], { uid: nobody, timeout: 60_000 });
  assert.equal(asNobody.code, 0, asNobody.err);
  assert.equal(asNobody.out, before.dump);

  const plain = UNPRIV - 2 * Math.floor(UNPRIV * 0.15);
  const userns = Math.floor(UNPRIV * 0.15);
  const t0 = Date.now();
  const runs = [
    ['as itself', [], plain],
    ['as root of its own user namespace', ['--ns', 'user'], userns],
    ['as root of its own user and network namespaces', ['--ns', 'usernet'], userns],
  ].filter(([, , n]) => n > 0);
  // At once: the VM's two CPUs, and requests of several callers interleaved.
  const results = await Promise.allSettled(runs.map(([what, args, n], i) =>
    fuzz(t, what, ['--count', String(n), ...args], { uid: nobody }, i)));
  let sent = 0;
  results.forEach((res, i) => {
    const [what, , n] = runs[i];
    if (res.status === 'rejected') throw res.reason;
    const s = res.value;
    assert.ok(s.messages >= n, `${what}: ${s.messages} of ${n} messages sent`);
    assert.ok(s.replies > 0 && s.errors > 0, `${what}: the kernel answered nothing`);
    // the long rules make RULE_LIST pages: their cursors were sent back
    assert.ok(n < 10_000 || (s.cursors_kept > 0 && s.cursors_sent > 0 && s.cursors_forged > 0),
      `${what}: no cursor kept (${s.cursors_kept}), sent back (${s.cursors_sent}) and forged (${s.cursors_forged})`);
    sent += s.messages;
  });
  const ms = Date.now() - t0;
  t.diagnostic(`unprivileged: ${sent} messages in ${ms} ms (${Math.round(ms * 10_000 / Math.max(sent, 1))} ms per 10,000) on ${process.env.VORDR_FLAVOR}`);
  const after = await state();
  assert.deepEqual(after, before, 'the unprivileged messages changed what the module holds');
  assertKlogClean(mark, 'the unprivileged fuzz');
});

test(`root's ${ROOT} random and structure-aware netlink messages leave only valid rules and flags`, async (t) => {
  const mark = klogMark();
  await k.reset();
  const t0 = Date.now();
  // Two at once, one of them listening to the events group, so that changes
  // race with dumps and with the rchngq table multicast.
  const half = Math.floor(ROOT / 2);
  const [s1, s2] = await Promise.all([
    fuzz(t, 'root (events)', ['--root', '--events', '--count', String(ROOT - half)], {}, 10),
    half ? fuzz(t, 'root', ['--root', '--count', String(half)], {}, 11) : { messages: 0, acks_ok: 0 },
  ]);
  const ms = Date.now() - t0;
  const sent = s1.messages + s2.messages;
  t.diagnostic(`root: cursors kept ${s1.cursors_kept + (s2.cursors_kept ?? 0)}, sent back ${s1.cursors_sent + (s2.cursors_sent ?? 0)}, forged ${s1.cursors_forged + (s2.cursors_forged ?? 0)}`);
  t.diagnostic(`root: ${sent} messages in ${ms} ms (${Math.round(ms * 10_000 / Math.max(sent, 1))} ms per 10,000) on ${process.env.VORDR_FLAVOR}`);
  assert.ok(sent >= ROOT);
  assert.ok(ROOT < 1000 || s1.acks_ok + s2.acks_ok > 0, 'root changed nothing: the fuzzer reached no handler');
  // nlfuzz --root holds long rules of life exit: RULE_LIST spans pages
  assert.ok(ROOT < 1000 || (s1.cursors_kept > 0 && s1.cursors_sent > 0), 'root sent back no cursor');

  // nlfuzz checked every rule and flag as it went; check the end state again,
  // through nlfuzz and through the addon's own parser.
  const text = await dump(false);
  const rules = await k.rules();
  t.diagnostic(`root left ${rules.length} rules; ${text.split('\n').filter((l) => l.startsWith('flag ')).join('; ')}`);
  // Rules with a timeout may expire between two reads, and rules of life
  // exit vanish with the socket that added them: compare the others.
  assert.equal(rules.filter((r) => !r.timeout && r.life !== C.life.exit).length,
    text.split('\n').filter((l) => l.startsWith('rule ') && / timeout=- life=(?!exit )/.test(l)).length);
  const max = Number(readFileSync(`/sys/module/${moduleName}/parameters/rules_max`, 'utf8'));
  assert.ok(rules.length <= max, `${rules.length} rules, rules_max ${max}`);
  const seen = new Set();
  for (const r of rules) {
    assert.ok(['allow', 'block'].includes(r.verdict), `rule with verdict ${r.verdict}`);
    assert.ok(r.prot in C.prot, `rule with protocol ${r.prot}`);
    assert.ok(typeof r.path === 'string' && r.path.startsWith('/'), `rule path ${JSON.stringify(r.path)}`);
    assert.ok(Buffer.byteLength(r.path) <= schema.attrs.path.hi, `rule path of ${Buffer.byteLength(r.path)} bytes`);
    // A rule is its protocol, path and qualifiers (defs.x QADDR ... QUSER): root's run makes qualified ones.
    const qual = QUALIFIER_ATTRS.map((n) => (r[n] === undefined ? '' : Buffer.isBuffer(r[n]) ? r[n].toString('hex') : String(r[n]))).join('/');
    const key = `${r.prot} ${r.path} ${qual}`;
    assert.ok(!seen.has(key), `two rules for ${key}`);
    seen.add(key);
  }
  for (const [name, v] of Object.entries(await allFlags())) {
    const f = schema.flags[name];
    if (f.writable) assert.ok(f.allowed.map((n) => C.value[n]).includes(v), `flag ${name} = ${v}`);
  }
  const q = await query();
  t.diagnostic(`vordr query after root's fuzz: exit ${q.code}, ${q.out.split('\n').length} lines`);
  const unrepresentable = rules.filter((r) => /[\n\r]/.test(r.path));
  if (unrepresentable.length === 0) assert.equal(q.code, 0, `vordr query: ${q.out}${q.err}`);

  // A clean state for the files after this one.
  await k.reset();
  assert.deepEqual(await k.rules(), []);
  for (const [name, f] of Object.entries(schema.flags)) if (f.writable) assert.equal(await k.flag(name), f.default, name);
  assertKlogClean(mark, "root's fuzz");
});

test('after the fuzz the module still decides: curl connects by its allow rule under unkrule block, and not by its block rule', async () => {
  const mark = klogMark();
  await k.reset();
  // Without its rule curl would be refused (unkrule block): the rule decides.
  // The server is python: it needs a rule of its own under unkrule block.
  await k.set('unkrule', 'block');
  await k.add('allow', 'tcp', bin.python);
  await k.add('allow', 'tcp', bin.curl);
  const a = curlGet();
  assert.equal(a.out, '200', `curl was not let through by its allow rule (exit ${a.code}, ${a.out})`);
  // Without its rule curl would connect (unkrule allow): the rule decides.
  await k.reset();
  await k.add('block', 'tcp', bin.curl);
  const b = curlGet();
  assert.equal(b.code, 7, `curl was not refused by its block rule (exit ${b.code}, ${b.out})`);
  const counted = Object.fromEntries((await k.rules()).map((r) => [`${r.verdict} ${r.path}`, r.packets]));
  assert.ok(counted[`block ${bin.curl}`] >= 1n, 'the block rule counted no packet');
  await k.reset();
  assert.equal(useCount(), 0, 'the module is still in use after the fuzzers exited');
  assertKlogClean(mark, 'the health check');
});
