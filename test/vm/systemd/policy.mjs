// The saved policy of the systemd flavor, shared by stage.sh (which saves it
// before the boot) and the tests (which check what holds after it).
//
//   node policy.mjs COUNT VORDR   (stage.sh, the module loaded): runs the
//   COUNT rules and `save` through `VORDR -f`, so the real daemon writes the
//   rules file and whatever the boot path reads from it.
//
// Rule 1 blocks the test's blocked application, rule 2 allows the allowed
// one; the rest name paths nobody runs, with spaces, '%', ',', ':' and
// non-ASCII characters, some of them directories (a trailing '/').
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';

export const BLOCKED = '/opt/vordr-test/blocked/python3';
export const ALLOWED = '/opt/vordr-test/allowed/python3';

/** The policy's rules: { verdict, prot, path }. */
export function policyRules(count) {
  const rules = [
    { verdict: 'block', prot: 'any', path: BLOCKED },
    { verdict: 'allow', prot: 'any', path: ALLOWED },
  ];
  const prots = ['any', 'tcp', 'udp', 'icmp'];
  for (let i = 0; rules.length < count; i++) {
    const dir = i % 5 === 4;
    rules.push({
      verdict: i % 2 ? 'allow' : 'block',
      prot: prots[i % prots.length],
      path: `/opt/vordr fill/app ${i} 100%,x:y ${'éß✓'[i % 3]}${dir ? '/' : '/bin'}`,
    });
  }
  return rules.slice(0, count);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [count, vordr] = [Number(process.argv[2]), process.argv[3]];
  if (!(count >= 2) || !vordr) {
    console.error('usage: node policy.mjs COUNT(>=2) VORDR');
    process.exit(2);
  }
  const repo = process.env.VORDR_REPO ?? fileURLToPath(new URL('../../..', import.meta.url));
  // The grammar's own quoting (daemon/dist/format.js), not a copy of it.
  const { quote } = await import(join(repo, 'daemon', 'dist', 'format.js'));
  const lines = policyRules(count).map((r) => `${r.verdict} ${r.prot} ${quote(r.path)}`);
  const file = join(tmpdir(), 'vordr-policy.vordr');
  writeFileSync(file, [...lines, 'save', ''].join('\n'));
  const r = spawnSync(vordr, ['-f', file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  process.stdout.write(r.stdout ?? '');
  process.stderr.write(r.stderr ?? '');
  if (r.status !== 0) {
    console.error(`${vordr} -f ${file} exited ${r.status ?? r.signal}`);
    process.exit(1);
  }
}
