// End-to-end tests: the real module, the real addon and the real daemon,
// with real programs making real connections on loopback inside the VM.
// Run by test/vm/guest.sh as root, with vordr.ko already loaded.
//
// vm-flavors: stock (test/vm/run.sh: not run on the debug kernel in CI:
// the command path from the console's grammar down; the module
// paths it drives run on the debug kernel in engine, kernel and e7.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, chmodSync, existsSync } from 'node:fs';
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

const repo = process.env.VORDR_REPO ?? new URL('../..', import.meta.url).pathname;
const cli = join(repo, 'daemon', 'dist', 'cli.js');
const work = mkdtempSync(join(tmpdir(), 'vordr-e2e-'));
chmodSync(work, 0o755);
const curl = realpathSync('/usr/bin/curl');
const socat = realpathSync('/usr/bin/socat');
const python = realpathSync('/usr/bin/python3');

const children = [];
let tcpPort;
let udpPort;
const udpLog = join(work, 'udp.log');

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000, ...opts });
  return { code: r.status, out: r.stdout ?? '', err: r.stderr ?? '', error: r.error };
}

// Run a command file through `vordr -f`, as root unless `user` is given.
function vordr(lines, { user } = {}) {
  const file = join(work, `cmds-${Math.random().toString(36).slice(2)}.vordr`);
  writeFileSync(file, lines.join('\n') + '\n');
  chmodSync(file, 0o644);
  const argv = [cli, '-f', file];
  if (user === undefined) return run(process.execPath, argv);
  return run('setpriv', [`--reuid=${user}`, `--regid=${user}`, '--clear-groups',
    process.execPath, ...argv]);
}

function curlGet() {
  return run(curl, ['-s', '-o', '/dev/null', '--connect-timeout', '2', '--max-time', '5',
    `http://127.0.0.1:${tcpPort}/`]);
}

function pythonGet() {
  return run(python, ['-c',
    `import urllib.request; urllib.request.urlopen('http://127.0.0.1:${tcpPort}/', timeout=5).read()`]);
}

function socatSend(msg) {
  return run(socat, ['-u', '-', `UDP-SENDTO:127.0.0.1:${udpPort}`], { input: msg + '\n' });
}

function pythonSend(msg) {
  return run(python, ['-c',
    `import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'${msg}\\n', ('127.0.0.1', ${udpPort}))`]);
}

async function waitFor(pred, what, ms = 30_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (pred()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`timed out waiting for ${what}`);
}

function udpReceived(msg) {
  return existsSync(udpLog) && readFileSync(udpLog, 'utf8').split('\n').includes(msg);
}

// Give the UDP receiver up to 2 s to prove a datagram did NOT arrive.
async function udpNotReceived(msg) {
  await new Promise((r) => setTimeout(r, 2000));
  return !udpReceived(msg);
}

before(async () => {
  const portFile = join(work, 'ports');
  // One python process serves HTTP on TCP and logs UDP datagrams; it only
  // receives and answers, so outbound rules on curl and socat never touch it.
  const server = spawn(python, ['-c', `
import http.server, socket, threading
tcp = http.server.ThreadingHTTPServer(('127.0.0.1', 0), http.server.SimpleHTTPRequestHandler)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(('127.0.0.1', 0))
def rx():
    while True:
        data, _ = udp.recvfrom(2048)
        with open(${JSON.stringify(udpLog)}, 'ab') as f:
            f.write(data)
threading.Thread(target=rx, daemon=True).start()
with open(${JSON.stringify(portFile)}, 'w') as f:
    f.write('%d %d' % (tcp.server_address[1], udp.getsockname()[1]))
tcp.serve_forever()
`], { cwd: work, stdio: 'ignore' });
  children.push(server);
  await waitFor(() => existsSync(portFile) && readFileSync(portFile, 'utf8').includes(' '), 'the test server', 120_000);
  [tcpPort, udpPort] = readFileSync(portFile, 'utf8').split(' ').map(Number);
  const clear = vordr(['clear all', 'enable']);
  assert.equal(clear.code, 0, clear.err);
});

after(() => {
  for (const c of children) c.kill('SIGKILL');
  vordr(['clear all', 'enable']);
});

test('curl reaches a loopback TCP server when no rule names it', () => {
  const r = curlGet();
  assert.equal(r.code, 0, `curl failed: ${r.err}`);
});

test('blocks curl over TCP when a tcp rule names it, while python still connects', (t) => {
  const r = vordr([`# block curl only`, `block tcp ${curl}`]);
  assert.equal(r.code, 0, `vordr -f failed: ${r.out}${r.err}`);
  const c = curlGet();
  t.diagnostic(`blocked: curl to 127.0.0.1:${tcpPort} exited ${c.code}`);
  // 7: connection refused at once; the SYN never left (fail fast).
  assert.equal(c.code, 7, `curl was not refused at once by a block rule (exit ${c.code}: ${c.err})`);
  const p = pythonGet();
  t.diagnostic(`python to 127.0.0.1:${tcpPort} exited ${p.code}`);
  assert.equal(p.code, 0, `python could not connect: ${p.err}`);
});

test('query prints the block rule with its counters', () => {
  const r = vordr(['query']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^mode: enabled$/m);
  const line = r.out.split('\n').find((l) => l.startsWith(`block tcp ${curl}`));
  assert.ok(line, `no rule line in:\n${r.out}`);
  const packets = Number(/packets=(\d+)/.exec(line)?.[1]);
  assert.ok(packets >= 1, `the rule counted no packets: ${line}`);
});

test('lets curl through again after clear tcp PATH', (t) => {
  const r = vordr([`clear tcp ${curl}`]);
  assert.equal(r.code, 0, r.err);
  const c = curlGet();
  t.diagnostic(`cleared: curl to 127.0.0.1:${tcpPort} exited ${c.code}`);
  assert.equal(c.code, 0, `curl still blocked: ${c.err}`);
});

test('blocks socat over UDP when a udp rule names it, while python still sends', async (t) => {
  assert.equal(socatSend('before-1').code, 0);
  await waitFor(() => udpReceived('before-1'), 'an unblocked socat datagram');

  const r = vordr([`block udp ${socat}`]);
  assert.equal(r.code, 0, r.err);
  const s = socatSend('blocked-1');
  t.diagnostic(`blocked: socat to 127.0.0.1:${udpPort} exited ${s.code}: ${s.err.trim()}`);
  assert.notEqual(s.code, 0, 'socat sent although a block rule names it');
  assert.match(s.err, /not permitted/i);
  assert.ok(await udpNotReceived('blocked-1'), 'the blocked datagram arrived');
  assert.equal(pythonSend('python-1').code, 0);
  await waitFor(() => udpReceived('python-1'), 'python\'s datagram');

  const c = vordr([`clear udp ${socat}`]);
  assert.equal(c.code, 0, c.err);
  assert.equal(socatSend('after-1').code, 0);
  await waitFor(() => udpReceived('after-1'), 'socat\'s datagram after clear');
});

test('a tcp rule does not block the same program over udp', async () => {
  const r = vordr([`block tcp ${socat}`]);
  assert.equal(r.code, 0, r.err);
  assert.equal(socatSend('tcp-rule-1').code, 0);
  await waitFor(() => udpReceived('tcp-rule-1'), 'socat\'s datagram under a tcp-only rule');
  assert.equal(vordr([`clear ${socat}`]).code, 0);
});

test('commands piped on standard input are run like a command file', () => {
  const r = run(process.execPath, [cli], { input: `block tcp ${curl}\nquery block\n` });
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, new RegExp(`^block tcp ${curl}`, 'm'));
  assert.notEqual(curlGet().code, 0);
  assert.equal(run(process.execPath, [cli], { input: 'clear all\n' }).code, 0);
  assert.equal(curlGet().code, 0);
});

test('an unprivileged user\'s block is refused with a clear message and changes nothing', () => {
  const r = vordr([`block tcp ${curl}`], { user: 65534 });
  assert.notEqual(r.code, 0, 'an unprivileged block succeeded');
  assert.match(r.out + r.err, /CAP_NET_ADMIN/);
  const q = vordr(['query'], { user: 65534 });
  assert.equal(q.code, 0, `an unprivileged query failed: ${q.err}`);
  assert.doesNotMatch(q.out, /block tcp/);
  assert.equal(curlGet().code, 0, 'curl blocked after a refused command');
});

test('a command file with bad lines names every failed line, exits non-zero and runs the good ones', () => {
  const r = vordr(['frobnicate', `block tcp ${curl}`, 'allow tcp relative/path', 'set mode sideways']);
  assert.notEqual(r.code, 0);
  const text = r.out + r.err;
  assert.match(text, /:1:/);
  assert.match(text, /:3:/);
  assert.match(text, /:4:/);
  assert.doesNotMatch(text, /:2:/);
  assert.notEqual(curlGet().code, 0, 'the good line was not applied');
  assert.equal(vordr(['clear all']).code, 0);
});

test('mode block drops everything and mode enabled restores rules', () => {
  assert.equal(vordr(['block']).code, 0);
  assert.notEqual(pythonGet().code, 0, 'python connected in mode block');
  assert.equal(vordr(['enable']).code, 0);
  assert.equal(pythonGet().code, 0);
});

test('a program posing as an allowed one from another mount namespace matches no rule', (t) => {
  // d_path() prints relative to the task's root, which a user can change
  // (here: python bind-mounted over curl's path in a new mount namespace;
  // an unprivileged user can do the same inside a user namespace).
  const r = vordr(['set unkrule block', `allow tcp ${curl}`, `allow tcp ${python}`]);
  assert.equal(r.code, 0, r.err);
  try {
    assert.equal(curlGet().code, 0, 'the real curl, allowed, could not connect');
    const code = `import urllib.request; urllib.request.urlopen('http://127.0.0.1:${tcpPort}/', timeout=3).read()`;
    const spoof = run('unshare', ['-m', 'sh', '-c',
      `mount --bind ${python} ${curl} && exec ${curl} -c "${code}"`]);
    t.diagnostic(`python posing as ${curl} exited ${spoof.code}`);
    assert.ok(spoof.code !== 0 && !spoof.error, `the impostor connected (or did not run: ${spoof.err})`);
    assert.match(spoof.err, /timed out|URLError/i);
  } finally {
    assert.equal(vordr(['set unkrule allow', 'clear all']).code, 0);
  }
});
