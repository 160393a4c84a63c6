'use strict';
// docs/COMMANDS.md is `vordr --reference`: made from the grammar's table,
// the schema, the events' fields, the options and the exit codes. These
// tests fail when the file in the repository is not what the daemon would
// print (run `npm run docs`), or when a table it is made from is not the
// one the code uses.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { schema: S } = require('../../addon');
const { vocabulary } = require('../../daemon/dist/vocab.js');
const { reference, FLAG_MEANING } = require('../../daemon/dist/reference.js');
const { OPTIONS, EXITS, EXIT } = require('../../daemon/dist/cli.js');
const { COMMANDS } = require('../../daemon/dist/grammar.js');
const { decodeEvent, eventJson, Users, EVENT_FIELDS } = require('../../daemon/dist/events.js');

const ROOT = path.join(__dirname, '..', '..');
const v = vocabulary(S);

test('docs/COMMANDS.md is what vordr --reference prints (npm run docs writes it)', () => {
  const want = reference(v, { options: OPTIONS, exits: EXITS });
  const got = fs.readFileSync(path.join(ROOT, 'docs', 'COMMANDS.md'), 'utf8');
  assert.equal(got, want, 'docs/COMMANDS.md is stale: run npm run docs');
});

test('the reference names every command, flag, option and exit code', () => {
  const text = reference(v, { options: OPTIONS, exits: EXITS });
  for (const e of COMMANDS) for (const u of e.usage) assert.ok(text.includes(u.replace(/\|/g, '\\|')), `usage ${u}`);
  for (const f of v.flagNames()) assert.ok(text.includes(`| \`${f}\` |`), `flag ${f}`);
  for (const id of Object.keys(S.ids.FLAG)) assert.ok(FLAG_MEANING[id], `flag ${id} has a meaning`);
  for (const o of Object.keys(OPTIONS)) assert.ok(text.includes(`--${o}`), `option --${o}`);
  for (const [k, c] of Object.entries(EXIT)) assert.ok(text.includes(`| ${c} | ${EXITS[k].meaning}`), `exit ${c}`);
});

test('every field of an event\'s JSON line is in the reference\'s table, and every one of the table can appear', () => {
  const C = (g, n) => S.constants[g][n].value;
  const full = decodeEvent({
    verdict: C('value', 'block'), reason: C('reason', 'rule'), dir: C('dir', 'out'), prot: C('prot', 'tcp'), af: S.platform.af.inet,
    saddr: Buffer.from([127, 0, 0, 1]), daddr: Buffer.from([127, 0, 0, 1]), sport: 41000, dport: 8000,
    pid: 4242, uid: 0, path: '/usr/bin/curl', dev: 2049, ino: 77n, count: 0, name: 'localhost', rpath: '/usr/bin/curl', rprot: C('prot', 'tcp'),
  }, v, new Date(0));
  const keys = Object.keys(JSON.parse(eventJson(full, new Users('/nonexistent'))));
  assert.deepEqual(keys, Object.keys(EVENT_FIELDS));
});
