// Concurrent saves of the rules file (issue 12, "the rules file is the
// user's"): two real `vordr` consoles, each on its own netlink socket to the
// real module, add lasting rules to one rules file at once; neither reports
// a false error, the file ends complete and consistent (the user's own lines
// kept, every rule once, nothing mixed), the modprobe.d line follows it, and
// the rules that do not last (`for TIME`, `until exit`, `until reboot`) are
// in the kernel but never in the file.
//
// Each console is the line console (cli.ts: standard input a terminal,
// standard output a pipe), so every line goes through Runner.runLine and the
// console's autosave exactly as typed.  The terminal is a pty made by a few
// lines of Python (pty.openpty), the only place this file needs one.
//
// vm-flavors: stock (test/vm/run.sh: not run on the debug kernel in CI:
// two consoles and one rules file: daemon code, no module path of
// its own.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { killAll, track, Kernel, C, assertKlogClean, bin, cli, klogMark, repo, schema, workdir } from './util.mjs';

const require = createRequire(import.meta.url);

const P = require(join(repo, 'daemon', 'dist', 'policy.js'));
const { vocabulary } = require(join(repo, 'daemon', 'dist', 'vocab.js'));

const W = workdir('save');
const N = 8;
let k;
let mark;

before(async () => {
  k = await Kernel.open();
  await k.reset();
  mark = klogMark();
});

after(async () => {
  killAll();
  try { await k.reset(); } finally { k.close(); }
});

// Runs `vordr ARGS` with its standard input a pty (so it is the interactive
// line console) fed LINES, standard output and error pipes; resolves when it
// exits.
const PTY = `
import os, pty, subprocess, sys, threading
master, slave = pty.openpty()
p = subprocess.Popen(sys.argv[1:], stdin=slave, stdout=sys.stdout, stderr=sys.stderr, close_fds=True)
os.close(slave)
def drain():
    try:
        while os.read(master, 4096):
            pass
    except OSError:
        pass
threading.Thread(target=drain, daemon=True).start()
for line in sys.stdin:
    os.write(master, line.encode())
sys.exit(p.wait())
`;

function consoleRun(args, lines) {
  return new Promise((resolve) => {
    const child = track(spawn(bin.python, ['-c', PTY, process.execPath, cli, ...args], { stdio: ['pipe', 'pipe', 'pipe'] }));
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d) => { out += d; });
    child.stderr.setEncoding('utf8').on('data', (d) => { err += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 400_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out, err });
    });
    child.stdin.end(lines.join('\n') + '\n');
  });
}

test('two consoles adding always rules to one rules file at once: no false error, the file complete and consistent, no temporary rule in it', async () => {
  const rules = join(W, 'rules');
  const policy = join(W, 'policy');
  const own = ['# the administrator\'s own words', '', 'set squelch disabled', 'allow tcp /opt/vordr-save/hand   # by hand', ''];
  writeFileSync(rules, own.join('\n'));
  const args = ['--rules', rules, '--policy-file', policy];
  const linesOf = (who, verdict, prot) => [
    ...Array.from({ length: N }, (_, i) => `${verdict} ${prot} /opt/vordr-save/${who}${i}`),
    `${verdict} ${prot} /opt/vordr-save/${who}-for for 1h`,
    `${verdict} ${prot} /opt/vordr-save/${who}-exit until exit`,
    `${verdict} ${prot} /opt/vordr-save/${who}-reboot until reboot`,
    'quit',
  ];
  const [a, b] = await Promise.all([consoleRun(args, linesOf('a', 'allow', 'tcp')), consoleRun(args, linesOf('b', 'block', 'udp'))]);
  for (const [who, r] of [['a', a], ['b', b]]) {
    assert.equal(r.code, 0, `console ${who} exited ${r.code} ${r.signal ?? ''}: ${r.err}`);
    assert.doesNotMatch(r.err, /error/i, `console ${who} reported an error`);
    assert.equal((r.out.match(/added: .*\(saved in /g) ?? []).length, N, `console ${who}: one confirmation per saved rule\n${r.out}`);
  }

  const text = readFileSync(rules, 'utf8');
  const lines = text.trimEnd().split('\n');
  assert.deepEqual(lines.slice(0, own.length - 1), own.slice(0, -1), 'the file\'s own lines stay first, as written');
  const added = lines.slice(own.length - 1);
  const want = [
    ...Array.from({ length: N }, (_, i) => `allow tcp /opt/vordr-save/a${i}`),
    ...Array.from({ length: N }, (_, i) => `block udp /opt/vordr-save/b${i}`),
  ];
  assert.deepEqual([...added].sort(), [...want].sort(), 'every rule once, nothing mixed, no temporary rule');
  for (const who of ['a', 'b']) {
    const order = added.filter((l) => l.includes(`/${who}`)).map((l) => Number(l.split(`/${who}`)[1]));
    assert.deepEqual(order, [...order].sort((x, y) => x - y), `console ${who}'s rules appended in the order typed`);
  }
  assert.deepEqual(readdirSync(W).filter((f) => f.startsWith('rules') || f.startsWith('policy')).sort(), ['policy', 'rules'],
    'no temporary or lock file left');

  // The derived policy file follows the rules file as it ends (its crc32 recorded).
  const v = vocabulary(schema);
  const pol = P.parsePolicy(readFileSync(policy), v)._unsafeUnwrap();
  assert.equal(pol.header.source, P.crc32(readFileSync(rules)), 'the policy file is derived from the final rules file');
  const got = pol.records.filter((r) => r.kind === 'rule').map((r) => `${v.valueName(r.verdict)} ${v.protName(r.prot)} ${r.path}`);
  for (const w of want) assert.ok(got.includes(w), `the policy file lacks ${w}`);
  assert.ok(!got.some((g) => /-(for|exit|reboot)\b/.test(g)), 'no temporary rule in it');
  const squelch = pol.records.find((r) => r.kind === 'flag' && r.flag === schema.flags.squelch.id);
  assert.equal(squelch.value, BigInt(C.value.disabled), 'it carries the flags the file sets');

  const inKernel = (await k.rules()).map((r) => r.path);
  for (const w of want) assert.ok(inKernel.includes(w.split(' ')[2]), `${w} is not in the kernel`);
  for (const who of ['a', 'b']) {
    assert.ok(inKernel.includes(`/opt/vordr-save/${who}-for`), 'the for rule is in the kernel');
    assert.ok(inKernel.includes(`/opt/vordr-save/${who}-reboot`), 'the until reboot rule is in the kernel');
  }
  assertKlogClean(mark);
});
