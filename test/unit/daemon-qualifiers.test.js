'use strict';
// Rule qualifiers in the grammar (daemon/src/qualifiers.ts, grammar.ts):
// `to`, `from`, `port`, `user` parsed, printed back as valid lines, refused
// with a reason; their wire form (kqual.ts); the rules file keyed by them;
// Tab offering them. The module's matching is test/vm/qualifiers.test.mjs.

const test = require('node:test');
const assert = require('node:assert/strict');
const { fakeAddon } = require('../../daemon/test/fixture.js');
const { vocabulary } = require('../../daemon/dist/vocab.js');
const { parseLine, describeParseError } = require('../../daemon/dist/grammar.js');
const { RulesDoc, ruleText } = require('../../daemon/dist/rulesfile.js');
const { complete } = require('../../daemon/dist/lineedit.js');
const Q = require('../../daemon/dist/qualifiers.js');
const K = require('../../daemon/dist/kqual.js');
const { ruleCommand } = require('../../daemon/dist/format.js');

const addon = fakeAddon();
const v = vocabulary(addon.schema);
const A = addon.schema.ids.ATTR;
const side = Q.sideValues(v);
const passwd = Q.parsePasswd('root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n');

const cmdOf = (line) => {
  const p = parseLine(line, v);
  assert.ok(p.isOk(), `${line}: ${p.isErr() ? describeParseError(p.error) : ''}`);
  return p.value.command;
};
const errOf = (line) => {
  const p = parseLine(line, v);
  assert.ok(p.isErr(), `${line} parsed`);
  return describeParseError(p.error);
};

test('every qualifier parses, in order, before a lifetime', () => {
  const c = cmdOf('allow tcp /usr/bin/curl to 10.0.0.0/8 port 443,80,8000-8100 user alice for 5m');
  assert.equal(c.kind, 'rule');
  assert.deepEqual([...c.q.to.addr], [10, 0, 0, 0]);
  assert.equal(c.q.to.plen, 8);
  assert.deepEqual(c.q.ports, [[80, 80], [443, 443], [8000, 8100]]);
  assert.equal(c.q.user, 'alice');
  assert.deepEqual(c.lifetime, { kind: 'for', seconds: 300 });
  const s = cmdOf('block udp /usr/sbin/sshd from 2001:db8::/32 port 22');
  assert.equal(s.q.from.plen, 32);
  assert.equal(s.q.to, undefined);
  assert.equal(cmdOf('allow /usr/bin/curl port 443').q.ports[0][0], 443, 'port alone, PROT omitted');
  assert.equal(cmdOf('allow /usr/bin/curl user 1000').q.user, '1000');
  const m = cmdOf('allow tcp /usr/bin/curl to ::ffff:10.1.2.3');
  assert.deepEqual([...m.q.to.addr], [10, 1, 2, 3], 'an IPv4-mapped address is the IPv4 one');
});

test('a name or a domain in to: lower-cased, printed back, sent as the module takes it', () => {
  const c = cmdOf('allow tcp /usr/bin/curl to Example.COM. port 443');
  assert.deepEqual(c.q.to, { name: 'example.com', domain: false });
  assert.equal(ruleText(c, v), 'allow tcp /usr/bin/curl to example.com port 443');
  const d = cmdOf('block /usr/bin/curl to *.ads.example');
  assert.deepEqual(d.q.to, { name: 'ads.example', domain: true });
  assert.equal(ruleText(d, v), 'block any /usr/bin/curl to *.ads.example');
  const k = Q.resolveQual(d.q, passwd, side);
  assert.deepEqual(k.value, { name: '*.ads.example', side: side.to });
  assert.equal(K.qualAttrs(k.value, A)[A.QNAME], '*.ads.example');
  assert.deepEqual(Q.qualifiersOf(K.qualOf(K.qualAttrs(k.value, A), A), passwd, side), d.q, 'through the wire and back');
});

test('every E7 line still parses as it did, with no qualifiers', () => {
  for (const line of ['allow tcp /usr/bin/curl', 'block /usr/bin/wget', 'allow any /opt/app/', 'block udp "/opt/My App/x"', 'clear tcp /usr/bin/curl', 'clear /usr/bin/curl']) {
    const c = cmdOf(line);
    assert.equal(c.q, undefined, line);
  }
});

test('what a rule says is printed back as a line that says the same', () => {
  for (const line of [
    'allow tcp /usr/bin/curl to 10.0.0.0/8 port 80,443 user alice',
    'block any /usr/bin/x to 2001:db8::/32',
    'allow udp /usr/sbin/sshd from 192.168.1.0/24 port 22',
    'allow icmp /bin/ping to ::1',
    'block tcp /x port 1-1023',
  ]) {
    const c = cmdOf(line);
    assert.equal(ruleText(c, v), line);
  }
  assert.equal(ruleText(cmdOf('allow tcp /x port 443,80,81'), v), 'allow tcp /x port 80-81,443', 'ports sorted and merged');
  assert.equal(ruleText(cmdOf('allow tcp /x to 2001:0db8:0:0::0/32'), v), 'allow tcp /x to 2001:db8::/32', 'the address canonical');
});

test('bad qualifiers are refused with their reason', () => {
  const cases = [
    ['allow tcp /x to 10.0.0.1/8', /bits set past its prefix: the network is 10\.0\.0\.0\/8/],
    ['allow tcp /x to 10.0.0.0/33', /at most \/32/],
    ['allow tcp /x from example.com', /is a name: 'from' takes an address/],
    ['allow tcp /x to -bad-.com', /not an IPv4 or IPv6 address/],
    ['allow tcp /x to 300.1.1.1', /not an IPv4 or IPv6 address/],
    ['allow tcp /x port 443 to 10.0.0.1', /in the order/],
    ['allow tcp /x to 10.0.0.1 from 10.0.0.2', /'to' or 'from', not both/],
    ['allow tcp /x for 5m to 10.0.0.1', /extra arguments/],
    ['allow tcp /x to', /missing DEST after to/],
    ['allow tcp /x port 0', /ports are 1 to 65535/],
    ['allow tcp /x port 90-80', /first port is after the last/],
    ['allow tcp /x port http', /not a port list/],
    [`allow tcp /x port ${Array.from({ length: 17 }, (_, i) => 1000 + 2 * i).join(',')}`, /at most 16 port ranges/],
    ['allow tcp /x user Bad:Name', /not a user name or number/],
    ['clear /x to 10.0.0.1', /cleared with its protocol/],
    ['allow icmp /x to 10.0.0.1 port 7', /an icmp rule has no ports/],
  ];
  for (const [line, why] of cases) assert.match(errOf(line), why, line);
});

test('clear of one qualified rule carries its qualifiers', () => {
  const c = cmdOf('clear tcp /usr/bin/curl to 10.0.0.0/8 port 443');
  assert.equal(c.kind, 'clear-rule');
  assert.equal(c.q.to.plen, 8);
  assert.deepEqual(c.q.ports, [[443, 443]]);
});

test('the module form: users looked up, the side named; listed rules read back to the same words', () => {
  const c = cmdOf('allow tcp /s from 10.1.0.0/16 port 22 user alice');
  const k = Q.resolveQual(c.q, passwd, side);
  assert.ok(k.isOk());
  assert.deepEqual(k.value, { addr: Buffer.from([10, 1, 0, 0]), plen: 16, ports: [[22, 22]], user: 1000, side: side.from });
  const portless = Q.resolveQual(cmdOf('allow tcp /s from 10.1.0.0/16').q, passwd, side);
  assert.equal(portless.value.side, side.to, 'no port: from and to are one rule, as the module keeps it');
  assert.match(Q.resolveQual(cmdOf('allow tcp /s user bob').q, passwd, side).error, /no user 'bob'/);
  const attrs = K.qualAttrs(k.value, A);
  assert.deepEqual(attrs[A.QPORTS], Buffer.from([22, 0, 22, 0]));
  assert.equal(attrs[A.QUSER], 1000);
  const back = K.qualOf(attrs, A);
  assert.deepEqual(Q.qualifiersOf(back, passwd, side), c.q, 'through the wire and back');
  assert.equal(Q.qualifierText(Q.qualifiersOf({ user: 4242 }, passwd, side)), 'user 4242', 'a uid passwd does not know');
  assert.deepEqual(K.qualAttrs(undefined, A), {}, 'no qualifiers: no attributes');
});

test('query lines print a rule\'s qualifiers, the user by name', () => {
  const rule = { prot: v.prot('tcp'), path: '/usr/bin/curl', verdict: v.value('allow'), packets: 0n, bytes: 0n, lasthit: 0n, timeout: 0, life: v.lifeOf('ALWAYS'),
    qual: { addr: Buffer.from([127, 0, 0, 2]), plen: 32, side: side.to, ports: [[443, 443]], user: 0 } };
  assert.equal(ruleCommand(rule, v), 'allow tcp /usr/bin/curl to 127.0.0.2 port 443 user root');
});

test('the rules file: one line per rule of path, protocol and qualifiers', () => {
  const doc = RulesDoc.parse(['allow tcp /usr/bin/curl', 'allow tcp /usr/bin/curl to 10.0.0.0/8', '# mine', ''].join('\n'), v);
  const key = (line) => Q.qualKeyOf(cmdOf(line).q, passwd, side);
  const edit = (line) => ({ kind: 'rule', ...cmdOf(line), qkey: key(line) });
  doc.apply(edit('block tcp /usr/bin/curl to 10.0.0.0/8'));
  assert.deepEqual(doc.text().split('\n'), ['allow tcp /usr/bin/curl', 'block tcp /usr/bin/curl to 10.0.0.0/8', '# mine', ''], 'its own line replaced');
  doc.apply(edit('allow tcp /usr/bin/curl to 10.0.0.0/8 port 443'));
  assert.equal(doc.rules().length, 3, 'another port: another rule');
  doc.apply({ kind: 'clear-rule', prot: v.prot('tcp'), path: '/usr/bin/curl', qkey: key('allow tcp /x to 10.0.0.0/8') });
  assert.deepEqual(doc.rules().map(({ line }) => line.text), ['allow tcp /usr/bin/curl', 'allow tcp /usr/bin/curl to 10.0.0.0/8 port 443'], 'that one rule cleared');
  doc.apply({ kind: 'clear-rule', prot: v.prot('tcp'), path: '/usr/bin/curl', qkey: '' });
  assert.deepEqual(doc.rules().map(({ line }) => line.text), ['allow tcp /usr/bin/curl to 10.0.0.0/8 port 443'], 'the unqualified one');
});

test('save: the module\'s qualified rules written with their qualifiers, lines matched by them', () => {
  const doc = RulesDoc.parse('block tcp /usr/bin/curl to 10.0.0.0/8\nallow tcp /usr/bin/curl to 10.9.0.0/16\n', v);
  const qual = (k) => ({ ...k, side: side.to });
  doc.reconcile([
    { prot: v.prot('tcp'), path: '/usr/bin/curl', verdict: v.value('allow'), qual: qual({ addr: Buffer.from([10, 0, 0, 0]), plen: 8 }) },
    { prot: v.prot('tcp'), path: '/usr/bin/curl', verdict: v.value('block'), qual: qual({ addr: Buffer.from([10, 1, 0, 0]), plen: 16, ports: [[22, 22]] }) },
  ], new Map(), new Set());
  assert.deepEqual(doc.text().split('\n'), [
    'allow tcp /usr/bin/curl to 10.0.0.0/8',
    'block tcp /usr/bin/curl to 10.1.0.0/16 port 22',
    '',
  ]);
});

test('Tab offers the qualifiers after PATH, then what may follow each', () => {
  const list = () => [];
  const words = (line) => [...(complete(line, line.length, v, { list }).candidates ?? [])].sort();
  assert.deepEqual(words('allow tcp /usr/bin/curl '), ['for', 'from', 'port', 'to', 'until', 'user']);
  assert.deepEqual(words('allow tcp /usr/bin/curl to 10.0.0.1 '), ['for', 'port', 'until', 'user']);
  assert.deepEqual(words('allow tcp /usr/bin/curl port 443 '), ['for', 'until', 'user']);
  assert.deepEqual(words('clear tcp /usr/bin/curl '), ['from', 'port', 'to', 'user']);
  assert.equal(complete('allow tcp /usr/bin/curl po', 26, v, { list }).line, 'allow tcp /usr/bin/curl port ');
});
