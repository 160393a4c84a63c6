'use strict';
// One schema: the daemon's code writes no name of defs.x as a string; it
// names entries by their C identifiers (schema.ids.FLAG.MODE), which are
// checked against defs.x when it is compiled (addon/ids.d.ts).  The words
// below are the grammar's own (SPEC section 2) or the screen's, which
// happen to be spelled like a defs.x name; each says why it may be written.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { schema } = require('../../daemon/test/fixture.js');

const SRC = path.join(__dirname, '..', '..', 'daemon', 'src');

const ALLOWED = {
  // The grammar's command and lifetime words, E7's command language.
  allow: 'the allow command', block: 'the block command', enable: 'the enable command',
  stats: 'the stats command and view', always: 'a Lifetime kind', exit: 'a Lifetime kind (until exit)', reboot: 'a Lifetime kind (until reboot)',
  // Tags of the daemon's own unions.
  mode: 'Command kind', rule: 'Command/Edit kind', flag: 'Edit kind / error wording', schema: 'ParseError kind',
  none: "an EditResult kind", any: "a prompt's scope kind", prot: "a prompt's scope kind / column label",
  // Column labels and titles of the screen and the service's JSON fields.
  pid: 'column label', dir: 'column label', verdict: 'column label', reason: 'column label', bytes: 'column label',
  events: 'pane name', vordr: 'window title',
  // The grammar's qualifier words (SPEC section 2), and the events pane's "to HOST" / "from HOST".
  to: 'qualifier word / direction word', from: 'qualifier word / direction word',
};

function defsNames() {
  const s = schema();
  const names = new Set([s.family.name, s.family.group]);
  for (const kind of Object.values(s.ids)) for (const n of Object.values(kind)) names.add(n);
  for (const g of Object.values(s.constants)) for (const c of Object.values(g)) for (const a of c.aliases) names.add(a);
  return names;
}

test('the daemon writes no defs.x name as a string but the grammar\'s and the screen\'s own words', () => {
  const names = defsNames();
  const found = [];
  for (const f of fs.readdirSync(SRC).filter((x) => x.endsWith('.ts'))) {
    const code = fs.readFileSync(path.join(SRC, f), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
    for (const m of code.matchAll(/'([^'\\\n]*)'|"([^"\\\n]*)"|`([^`$\\]*)`/g)) {
      const w = m[1] ?? m[2] ?? m[3];
      if (names.has(w) && !(w in ALLOWED)) found.push(`${f}: '${w}'`);
    }
  }
  assert.deepEqual(found, [], 'name these by schema.ids instead');
});

test('every id the addon exports names an entry of its schema', () => {
  const { schemaGaps } = require('../../daemon/dist/addon.js');
  assert.deepEqual(schemaGaps(schema()), []);
  const s = schema();
  assert.equal(s.ids.CMD.RULE_ADD, 'rule_add');
  assert.equal(s.ids.FLAG.MODE, 'mode');
  assert.equal(s.ids.VALUE.ENABLED, 'enabled');
});
