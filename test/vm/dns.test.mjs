// Names from the applications' own DNS lookups (issue 14, item 3): the
// module reads the answers delivered to the socket that asked, from the
// server it asked, and names the far end in events. Real curl through
// glibc's resolver against a DNS server inside the VM (test/vm/dnsprobe.py
// on 127.0.0.1, /etc/resolv.conf pointing at it in the overlay); a CNAME
// chain; IPv6; TCP; TTL expiry; forged answers (another server address,
// another socket) naming nothing; the per-identity bound; malformed
// answers (VORDR_FUZZ_DNS of them, 20,000 unless told) under whichever
// kernel runs, KASAN/UBSAN on the debug one. Runs as root in the test VM
// with vordr.ko loaded; leaves the module's defaults and /etc as it found
// them.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  C, Kernel, addr, assertKlogClean, bin, copyExe, killAll, klogMark, repo, runAsync, track, workdir,
} from './util.mjs';

const W = workdir('dns');
const probe = join(repo, 'test', 'vm', 'dnsprobe.py');
const srvExe = copyExe(bin.python, join(W, 'srv', 'py'));
const askExe = copyExe(bin.python, join(W, 'ask', 'py'));
const forgedExe = copyExe(bin.python, join(W, 'forged', 'py'));
const manyExe = copyExe(bin.python, join(W, 'many', 'py'));
const fuzzExe = copyExe(bin.python, join(W, 'fuzz', 'py'));
const fuzzCount = Number(process.env.VORDR_FUZZ_DNS ?? 20000);
let k;
let server;
let mark;
const saved = {};

function param(name) {
  return Number(readFileSync(`/sys/module/vordr/parameters/${name}`, 'utf8'));
}

/** Runs dnsprobe.py as @exe (a copy of python: its own identity); its output, trimmed. */
async function probeAs(exe, args, timeout = 30_000) {
  const r = await runAsync(exe, [probe, ...args], { timeout });
  assert.equal(r.code, 0, `dnsprobe ${args.join(' ')}: ${r.err}`);
  return r.out.trim();
}

/** The first event from @exe going to @ip (a string) port @port, from index @from. */
function toward(exe, ip, port, from, what) {
  return k.waitEvent((e) => k.events.indexOf(e) >= from && e.path === exe && e.dir === C.dir.out &&
    addr(e.daddr) === ip && e.dport === port, 5000, what);
}

before(async () => {
  k = await Kernel.open();
  await k.reset();
  // Every allowed packet reported, none withheld: the events are what is checked.
  await k.set('accepts', 'enabled');
  await k.set('squelch', 'disabled');
  k.subscribe();
  // The resolver of every program in the VM asks the server below.
  for (const f of ['/etc/resolv.conf', '/etc/nsswitch.conf']) {
    saved[f] = existsSync(f) ? readFileSync(f, 'utf8') : undefined;
  }
  writeFileSync('/etc/resolv.conf.vordr', 'nameserver 127.0.0.1\noptions timeout:2 attempts:1\n');
  renameSync('/etc/resolv.conf.vordr', '/etc/resolv.conf');
  const nss = (saved['/etc/nsswitch.conf'] ?? '').split('\n').filter((l) => !/^hosts:/.test(l));
  writeFileSync('/etc/nsswitch.conf', [...nss, 'hosts: files dns', ''].join('\n'));
  server = spawn(srvExe, [probe, 'serve', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  track(server);
  let err = '';
  server.stderr.setEncoding('utf8').on('data', (d) => { err += d; });
  await new Promise((resolve, reject) => {
    server.on('exit', (c) => reject(new Error(`the DNS server exited (${c}): ${err}`)));
    createInterface({ input: server.stdout }).on('line', (l) => { if (l === 'ready') resolve(); });
  });
});

after(async () => {
  killAll();
  for (const [f, text] of Object.entries(saved)) if (text !== undefined) writeFileSync(f, text);
  try { await k.reset(); } finally { k.close(); }
});

afterEach(() => assertKlogClean(mark));

function fresh() {
  mark = klogMark();
  return k.events.length;
}

test('curl by name: its connection\'s event names the host it looked up', async () => {
  const from = fresh();
  // Nothing listens on 127.0.0.2:9: refused at once, after the SYN.
  const r = await runAsync(bin.curl, ['-s', '--connect-timeout', '5', 'http://a.vordr.test:9/']);
  assert.equal(r.code, 7, `curl: exit ${r.code} ${r.err} (6 is "could not resolve": the DNS server did not answer)`);
  const e = await toward(bin.curl, '127.0.0.2', 9, from, 'curl\'s SYN to 127.0.0.2');
  assert.equal(e.name, 'a.vordr.test');
  // The server's own packets name nothing: it looked nothing up.
  assert.ok(k.events.slice(from).filter((x) => x.path === srvExe).every((x) => x.name === undefined));
});

test('a CNAME chain counts for the name asked', async () => {
  const from = fresh();
  const r = await runAsync(bin.curl, ['-s', '--connect-timeout', '5', 'http://c.vordr.test:9/']);
  assert.equal(r.code, 7, `curl: exit ${r.code} ${r.err}`);
  const e = await toward(bin.curl, '127.0.0.3', 9, from, 'curl\'s SYN to 127.0.0.3');
  assert.equal(e.name, 'c.vordr.test');
});

test('IPv6 (AAAA over an IPv6 server) and a query over TCP are read as well', async () => {
  let from = fresh();
  assert.equal(await probeAs(askExe, ['ask', 'six.vordr.test', '::1', '60', '::1', '::1']), 'ECONNREFUSED');
  let e = await toward(askExe, '::1', 9, from, 'the probe\'s SYN to [::1]:9');
  assert.equal(e.name, 'six.vordr.test');
  from = k.events.length;
  assert.equal(await probeAs(askExe, ['ask', 'tcp.vordr.test', '127.0.0.5', '60', '127.0.0.14', '127.0.0.14', 'tcp']), 'ECONNREFUSED');
  e = await toward(askExe, '127.0.0.5', 9, from, 'the probe\'s SYN to 127.0.0.5');
  assert.equal(e.name, 'tcp.vordr.test');
});

test('a name is the executable\'s, not the process\'s: another process of it sees the name without a lookup', async () => {
  let from = fresh();
  assert.equal(await probeAs(askExe, ['ask', 'long.vordr.test', '127.0.0.16', '600', '127.0.0.15', '127.0.0.15']), 'ECONNREFUSED');
  assert.equal((await toward(askExe, '127.0.0.16', 9, from, 'the SYN after the lookup')).name, 'long.vordr.test');
  from = k.events.length;
  assert.equal(await probeAs(askExe, ['connect', '127.0.0.16', '9']), 'ECONNREFUSED');
  assert.equal((await toward(askExe, '127.0.0.16', 9, from, 'the SYN of another process')).name, 'long.vordr.test');
});

test('a name lasts its TTL and the grace, then the address is bare again', async () => {
  let from = fresh();
  // The SYN follows the answer within the same process at once: well inside 2 s + 3 s.
  assert.equal(await probeAs(askExe, ['ask', 'short.vordr.test', '127.0.0.4', '2', '127.0.0.15', '127.0.0.15']), 'ECONNREFUSED');
  assert.equal((await toward(askExe, '127.0.0.4', 9, from, 'the first SYN')).name, 'short.vordr.test');
  // Waiting longer than the 2 s TTL and the 3 s grace (however slow the VM).
  await new Promise((r) => setTimeout(r, 5500));
  from = k.events.length;
  assert.equal(await probeAs(askExe, ['connect', '127.0.0.4', '9']), 'ECONNREFUSED');
  assert.equal((await toward(askExe, '127.0.0.4', 9, from, 'the SYN after expiry')).name, undefined);
});

test('forged answers name nothing: from another address, or to a socket that did not ask', async () => {
  let from = fresh();
  // Asked of 127.0.0.9, answered from 127.0.0.10.
  assert.equal(await probeAs(forgedExe, ['ask', 'forged.vordr.test', '127.0.0.6', '60', '127.0.0.9', '127.0.0.10']), 'ECONNREFUSED');
  assert.equal((await toward(forgedExe, '127.0.0.6', 9, from, 'the SYN after a forged answer')).name, undefined);
  // The answer comes from the address asked, but to another socket.
  from = k.events.length;
  assert.equal(await probeAs(forgedExe, ['other', 'bystander.vordr.test', '127.0.0.8', '127.0.0.9']), 'ECONNREFUSED');
  assert.equal((await toward(forgedExe, '127.0.0.8', 9, from, 'the SYN after an answer to a bystander')).name, undefined);
  // Control: the same exchange, answered by the server asked, names it.
  from = k.events.length;
  assert.equal(await probeAs(forgedExe, ['ask', 'real.vordr.test', '127.0.0.6', '60', '127.0.0.9', '127.0.0.9']), 'ECONNREFUSED');
  assert.equal((await toward(forgedExe, '127.0.0.6', 9, from, 'the SYN after a real answer')).name, 'real.vordr.test');
});

test('an identity keeps at most 256 names; the ones dropped are counted', async () => {
  fresh();
  const drops = await k.flag('dnsdrops');
  const names = param('dns_names');
  assert.equal(await probeAs(manyExe, ['many', '300', '127.0.0.11']), 'done');
  assert.equal(await k.flag('dnsdrops') - drops, 300 - 256, 'dnsdrops grew by the names past the bound');
  assert.ok(param('dns_names') - names <= 256, `dns_names ${param('dns_names')} (was ${names})`);
});

test(`${fuzzCount} malformed answers to a socket that asked: nothing learnt from them, the kernel log clean`, { timeout: 30 * 60_000 }, async () => {
  fresh();
  const t0 = Date.now();
  assert.equal(await probeAs(fuzzExe, ['fuzz', String(fuzzCount), '127.0.0.12', '1'], 30 * 60_000), `done ${fuzzCount}`);
  console.log(`# ${fuzzCount} malformed answers in ${Date.now() - t0} ms`);
  // The parser still reads a good answer after all that.
  const from = k.events.length;
  assert.equal(await probeAs(fuzzExe, ['ask', 'after.fuzz.test', '127.0.0.13', '60', '127.0.0.12', '127.0.0.12']), 'ECONNREFUSED');
  assert.equal((await toward(fuzzExe, '127.0.0.13', 9, from, 'the SYN after the fuzz')).name, 'after.fuzz.test');
});
