'use strict';
// The derived policy file (daemon/src/policy.ts): derive from a rules file,
// the canonical record bytes defs.x defines, parse back, crc32 as zlib's.
// The loading itself (bootPolicy against the module) is test/vm/policy.test.mjs.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');
const { fakeAddon } = require('../../daemon/test/fixture.js');
const { vocabulary } = require('../../daemon/dist/vocab.js');
const { RulesDoc } = require('../../daemon/dist/rulesfile.js');
const P = require('../../daemon/dist/policy.js');

const addon = fakeAddon();
const v = vocabulary(addon.schema);
const CMD = (n) => addon.schema.commands[n].id;

const WEIRD = ['/opt/My App/a,b:c%', '/opt/ünï cødé/bin', '/opt/100% sure/', '/opt/x:y,z/q r'];

test('crc32 is zlib\'s (the module computes ~crc32_le(~0, ...), the same)', () => {
  for (const s of ['', 'a', '123456789', 'vordr policy ä']) {
    const b = Buffer.from(s, 'utf8');
    const want = typeof zlib.crc32 === 'function' ? zlib.crc32(b) : undefined;
    if (want !== undefined) assert.equal(P.crc32(b), want, s);
  }
  assert.equal(P.crc32(Buffer.from('123456789')), 0xcbf43926, 'the standard check value');
});

test('a rule record is the command number, verdict, protocol, u16 length, path bytes, qualifiers; a flag record u8, u16, u64', () => {
  const r = P.encodeRecord({ kind: 'rule', verdict: v.value('block'), prot: v.prot('tcp'), path: '/bin/ä' }, v);
  assert.deepEqual([...r], [CMD('rule_add'), v.value('block'), v.prot('tcp'), 7, 0, ...Buffer.from('/bin/ä'), 0, 0], 'no qualifiers: a 0 length');
  const from = v.schema.constants.side[v.schema.ids.SIDE.FROM];
  const q = { addr: Buffer.from([10, 1, 0, 0]), plen: 16, side: from.value, ports: [[22, 22], [8000, 8100]], user: 1000 };
  const rq = P.encodeRecord({ kind: 'rule', verdict: v.value('allow'), prot: v.prot('tcp'), path: '/s', qual: q }, v);
  assert.deepEqual([...rq.subarray(7)], [
    4 + 1 + 4 + 3 + 8 + 1, 0, 0xe9, 0x03, 0, 0, // u16 length; uid 1000 + 1
    4, 10, 1, 0, 0, 16, from.value, 2, 22, 0, 22, 0, 0x40, 0x1f, 0xa4, 0x1f, 0,
  ]);
  const named = P.encodeRecord({ kind: 'rule', verdict: v.value('allow'), prot: v.prot('tcp'), path: '/s', qual: { name: '*.a.b', side: 0 } }, v);
  assert.deepEqual([...named.subarray(7 + 2 + 4 + 1 + 3)], [5, ...Buffer.from('*.a.b')], 'a name: its length and bytes last');
  const nfile = P.encodePolicy([{ kind: 'rule', verdict: v.value('allow'), prot: v.prot('tcp'), path: '/s', qual: { name: 'a.b', side: 0 } }], 0, v);
  assert.equal(P.parsePolicy(nfile, v).value.records[0].qual.name, 'a.b');
  const file = P.encodePolicy([{ kind: 'rule', verdict: v.value('allow'), prot: v.prot('tcp'), path: '/s', qual: q }], 0, v);
  const back = P.parsePolicy(file, v);
  assert.ok(back.isOk());
  assert.deepEqual(back.value.records[0].qual, q, 'read back as written');
  assert.equal(P.parsePolicy(file.subarray(0, file.length - 3), v).error?.reason, 'TRUNCATED', 'cut inside the qualifiers');
  const f = P.encodeRecord({ kind: 'flag', flag: v.flag('unkrule').id, value: BigInt(v.value('pending')) }, v);
  assert.deepEqual([...f], [CMD('flag_set'), v.flag('unkrule').id, 0, v.value('pending'), 0, 0, 0, 0, 0, 0, 0]);
});

test('derive: every lasting rule that parsed, in order, paths with spaces, %, comma, colon and non-ASCII kept; then every writable flag', () => {
  const text = [
    '# a comment',
    'set unkrule block',
    ...WEIRD.map((p, i) => `${i % 2 ? 'allow' : 'block'} tcp "${p}"`),
    'allow udp relative/bad',
    'allow tcp /opt/tmp for 5m',
    'allow /opt/exit until exit',
    'mode enabled',
    '',
  ].join('\n');
  const doc = RulesDoc.parse(text, v);
  const recs = P.derive(doc, v);
  const rules = recs.filter((r) => r.kind === 'rule');
  assert.deepEqual(rules.map((r) => r.path), WEIRD, 'the bad line and the temporary rules are not in it');
  const flags = recs.filter((r) => r.kind === 'flag');
  const writable = v.flagNames().map((n) => v.flag(n)).filter((f) => f.writable);
  assert.deepEqual(flags.map((r) => r.flag), writable.map((f) => f.id).sort((a, b) => a - b), 'every writable flag, by id');
  assert.equal(flags.find((r) => r.flag === v.flag('unkrule').id).value, BigInt(v.value('block')), 'set by the file');
  const squelch = v.flag('squelch');
  assert.equal(flags.find((r) => r.flag === squelch.id).value, BigInt(squelch.default), 'not set: the default');

  const bytes = P.encodePolicy(recs, P.crc32(Buffer.from(text)), v);
  const back = P.parsePolicy(bytes, v)._unsafeUnwrap();
  assert.deepEqual(back.records, recs, 'parse(encode(x)) is x');
  assert.equal(back.header.records, recs.length);
  assert.equal(back.header.crc, P.crc32(bytes.subarray(P.HEADER_SIZE)), 'the header\'s crc is over the records\' bytes');
  assert.equal(back.header.source, P.crc32(Buffer.from(text)));
  assert.equal(back.header.schema, addon.schema.family.schemaCrc >>> 0);
  assert.equal(back.header.format, P.POLICY_FORMAT);
});

test('parse: a file that is not one, is cut inside a record or its header, or has a record of no known kind says which', () => {
  const recs = [{ kind: 'rule', verdict: v.value('allow'), prot: v.prot('any'), path: '/opt/a b' }, { kind: 'flag', flag: v.flag('mode').id, value: 1n }];
  const good = P.encodePolicy(recs, 0, v);
  const reason = (b) => { const r = P.parsePolicy(b, v); assert.ok(r.isErr(), 'an error'); return r.error.reason; };
  assert.equal(reason(Buffer.from('# vordr rules\nallow /a\n')), 'BADFORMAT');
  assert.equal(reason(good.subarray(0, 10)), 'TRUNCATED');
  assert.equal(reason(Buffer.alloc(0)), 'TRUNCATED');
  assert.equal(reason(good.subarray(0, good.length - 3)), 'TRUNCATED');
  assert.equal(reason(good.subarray(0, P.HEADER_SIZE + 8)), 'TRUNCATED', 'inside the first record\'s path');
  const bad = Buffer.from(good);
  bad[P.HEADER_SIZE] = 0xee;
  assert.equal(reason(bad), 'BADFORMAT');
  const fmt = Buffer.from(good);
  fmt.writeUInt32LE(99, P.POLICY_MAGIC.length);
  assert.equal(reason(fmt), 'BADFORMAT');
  // Cut at a record's end, or a path byte changed: it parses; the module's
  // count and crc32 catch those (test/vm/policy.test.mjs).
  const cut = P.parsePolicy(good.subarray(0, good.length - 11), v)._unsafeUnwrap();
  assert.equal(cut.records.length, 1);
  assert.equal(cut.header.records, 2);
  const flipped = Buffer.from(good);
  flipped[P.HEADER_SIZE + 7] ^= 0x20;
  const f = P.parsePolicy(flipped, v)._unsafeUnwrap();
  assert.notEqual(P.crc32(flipped.subarray(P.HEADER_SIZE)), f.header.crc);
});

test('writeDerived writes the file atomically from the rules file\'s bytes and leaves no temporary file', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vordr-policy-test-'));
  const file = path.join(dir, 'lib', 'policy');
  const text = Buffer.from(`allow tcp "${WEIRD[0]}"\nset unkrule pending\n`);
  await P.writeDerived(file, text, v);
  const p = P.parsePolicy(fs.readFileSync(file), v)._unsafeUnwrap();
  assert.equal(p.header.source, P.crc32(text));
  assert.deepEqual(p.records.filter((r) => r.kind === 'rule').map((r) => r.path), [WEIRD[0]]);
  assert.deepEqual(fs.readdirSync(path.dirname(file)), ['policy']);
  await P.writeDerived(file, undefined, v);
  const empty = P.parsePolicy(fs.readFileSync(file), v)._unsafeUnwrap();
  assert.equal(empty.records.filter((r) => r.kind === 'rule').length, 0, 'no rules file: no rules');
  assert.equal(empty.header.source, P.crc32(Buffer.alloc(0)));
});

test('10,000 rules derive, encode and parse back whole', () => {
  const lines = [];
  for (let i = 0; i < 10000; i++) lines.push(`${i % 3 ? 'allow' : 'block'} tcp "/opt/vordr pol/ä,%:${i}/bin"`);
  const doc = RulesDoc.parse(lines.join('\n') + '\n', v);
  const recs = P.derive(doc, v);
  const bytes = P.encodePolicy(recs, 1, v);
  const back = P.parsePolicy(bytes, v)._unsafeUnwrap();
  assert.equal(back.records.filter((r) => r.kind === 'rule').length, 10000);
  assert.equal(back.records[9999].path, '/opt/vordr pol/ä,%:9999/bin');
});

test('pathResolver answers as resolveRulePath does: links resolved, directories keep their slash, missing paths as written', async () => {
  const { resolveRulePath } = require('../../daemon/dist/rulesfile.js');
  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'vordr-resolve-test-')));
  fs.mkdirSync(path.join(dir, 'real dir'));
  fs.writeFileSync(path.join(dir, 'real dir', 'exe'), '');
  fs.symlinkSync(path.join(dir, 'real dir'), path.join(dir, 'link dir'));
  fs.symlinkSync(path.join(dir, 'real dir', 'exe'), path.join(dir, 'real dir', 'exe-link'));
  const resolve = P.pathResolver();
  const cases = [
    `${dir}/real dir/exe`, `${dir}/link dir/exe`, `${dir}/real dir/exe-link`, `${dir}/link dir/exe-link`,
    `${dir}/link dir/`, `${dir}/real dir/`, `${dir}/missing/exe`, `${dir}/link dir/missing`, '/', '/nonexistent-vordr/',
  ];
  for (const c of cases) assert.equal(await resolve(c), (await resolveRulePath(c)).path, c);
});
