'use strict';
// The one command grammar (SPEC section 2): every command form, every error
// kind, E7's example lines.  Needs `npx tsc -p tsconfig.json` first.

const test = require('node:test');
const assert = require('node:assert/strict');
const { schema } = require('../../daemon/test/fixture.js');
const { parseLine, tokenize, describeParseError, help } = require('../../daemon/dist/grammar.js');
const { vocabulary } = require('../../daemon/dist/vocab.js');
const { quote } = require('../../daemon/dist/format.js');

const v = vocabulary(schema());
const S = schema();
const PROT = (n) => S.constants.prot[n].value;
const VAL = (n) => S.constants.value[n].value;
const FLAG = (n) => S.flags[n].id;

function cmd(line) {
  const r = parseLine(line, v);
  assert.ok(r.isOk(), `${line}: ${r.isErr() ? describeParseError(r.error) : ''}`);
  return r.value && r.value.command;
}

function fails(line, kind) {
  const r = parseLine(line, v);
  assert.ok(r.isErr(), `${line} should not parse`);
  assert.equal(r.error.kind, kind, `${line}: ${describeParseError(r.error)}`);
  const msg = describeParseError(r.error);
  assert.ok(msg.length > 0 && !msg.includes('\n'));
  return msg;
}

test('allow and block take an optional protocol and an absolute path', () => {
  assert.deepEqual(cmd('allow tcp /usr/bin/curl'), { kind: 'rule', verdict: VAL('allow'), prot: PROT('tcp'), path: '/usr/bin/curl', lifetime: { kind: 'always' } });
  assert.deepEqual(cmd('block udp /usr/bin/socat'), { kind: 'rule', verdict: VAL('block'), prot: PROT('udp'), path: '/usr/bin/socat', lifetime: { kind: 'always' } });
  assert.deepEqual(cmd('allow icmp /bin/ping'), { kind: 'rule', verdict: VAL('allow'), prot: PROT('icmp'), path: '/bin/ping', lifetime: { kind: 'always' } });
  assert.deepEqual(cmd('block any /bin/x'), { kind: 'rule', verdict: VAL('block'), prot: PROT('any'), path: '/bin/x', lifetime: { kind: 'always' } });
});

test('an omitted protocol means any', () => {
  assert.deepEqual(cmd('allow /usr/lib/firefox/firefox'), { kind: 'rule', verdict: VAL('allow'), prot: PROT('any'), path: '/usr/lib/firefox/firefox', lifetime: { kind: 'always' } });
  assert.deepEqual(cmd('block /opt/x'), { kind: 'rule', verdict: VAL('block'), prot: PROT('any'), path: '/opt/x', lifetime: { kind: 'always' } });
});

test('a path ending in / is a directory rule and keeps its slash', () => {
  assert.deepEqual(cmd('allow any /bin/'), { kind: 'rule', verdict: VAL('allow'), prot: PROT('any'), path: '/bin/', lifetime: { kind: 'always' } });
  assert.deepEqual(cmd('block tcp /usr/bin/'), { kind: 'rule', verdict: VAL('block'), prot: PROT('tcp'), path: '/usr/bin/', lifetime: { kind: 'always' } });
});

test('every protocol name of the schema is accepted', () => {
  for (const [name, c] of Object.entries(S.constants.prot))
    for (const alias of c.aliases) assert.equal(cmd(`allow ${alias} /x`).prot, c.value, name);
});

test('enable, block and allow without a path set the mode flag', () => {
  assert.deepEqual(cmd('enable'), { kind: 'mode', value: VAL('enabled') });
  assert.deepEqual(cmd('block'), { kind: 'mode', value: VAL('block') });
  assert.deepEqual(cmd('allow'), { kind: 'mode', value: VAL('disabled') });
});

test('clear removes one rule, every rule of a path, or a whole verdict', () => {
  assert.deepEqual(cmd('clear tcp /usr/bin/socat'), { kind: 'clear-rule', prot: PROT('tcp'), path: '/usr/bin/socat' });
  assert.deepEqual(cmd('clear any /usr/bin/socat'), { kind: 'clear-rule', prot: PROT('any'), path: '/usr/bin/socat' });
  assert.deepEqual(cmd('clear /usr/bin/socat'), { kind: 'clear-path', path: '/usr/bin/socat' });
  assert.deepEqual(cmd('clear allow'), { kind: 'clear-verdict', verdict: VAL('allow') });
  assert.deepEqual(cmd('clear block'), { kind: 'clear-verdict', verdict: VAL('block') });
  assert.deepEqual(cmd('clear all'), { kind: 'clear-verdict', verdict: undefined });
});

test('query lists everything or one verdict', () => {
  assert.deepEqual(cmd('query'), { kind: 'query', verdict: undefined });
  assert.deepEqual(cmd('query allow'), { kind: 'query', verdict: VAL('allow') });
  assert.deepEqual(cmd('query block'), { kind: 'query', verdict: VAL('block') });
});

test('set takes a flag value by name, alias or number', () => {
  assert.deepEqual(cmd('set mode disable'), { kind: 'set', flag: 'mode', id: FLAG('mode'), value: VAL('disabled') });
  assert.deepEqual(cmd('set mode disabled'), { kind: 'set', flag: 'mode', id: FLAG('mode'), value: VAL('disabled') });
  assert.deepEqual(cmd('set mode enabled'), { kind: 'set', flag: 'mode', id: FLAG('mode'), value: VAL('enabled') });
  assert.deepEqual(cmd('set mode enable'), { kind: 'set', flag: 'mode', id: FLAG('mode'), value: VAL('enabled') });
  assert.deepEqual(cmd(`set mode ${VAL('block')}`), { kind: 'set', flag: 'mode', id: FLAG('mode'), value: VAL('block') });
  assert.deepEqual(cmd('set unkrule pending'), { kind: 'set', flag: 'unkrule', id: FLAG('unkrule'), value: VAL('pending') });
});

test('every writable flag accepts each of its allowed values and its aliases', () => {
  for (const [name, f] of Object.entries(S.flags)) {
    if (!f.writable) continue;
    for (const a of f.allowed)
      for (const alias of S.constants.value[a].aliases)
        assert.equal(cmd(`set ${name} ${alias}`).value, S.constants.value[a].value, `set ${name} ${alias}`);
  }
});

test('get names any flag, writable or read-only', () => {
  for (const [name, f] of Object.entries(S.flags)) assert.deepEqual(cmd(`get ${name}`), { kind: 'get', flag: name, id: f.id });
});

test('stats, save, load, help, disconnect, bye and quit parse', () => {
  assert.deepEqual(cmd('stats'), { kind: 'stats' });
  assert.deepEqual(cmd('save'), { kind: 'save', file: undefined });
  assert.deepEqual(cmd('save /tmp/rules'), { kind: 'save', file: '/tmp/rules' });
  assert.deepEqual(cmd('save "my rules"'), { kind: 'save', file: 'my rules' });
  assert.deepEqual(cmd('load /etc/vordr/rules'), { kind: 'load', file: '/etc/vordr/rules' });
  assert.deepEqual(cmd('help'), { kind: 'help', topic: undefined });
  assert.deepEqual(cmd('help allow'), { kind: 'help', topic: 'allow' });
  assert.deepEqual(cmd('help bye'), { kind: 'help', topic: 'bye' });
  assert.deepEqual(cmd('disconnect'), { kind: 'disconnect' });
  assert.deepEqual(cmd('bye'), { kind: 'disconnect' });
  assert.deepEqual(cmd('quit'), { kind: 'quit' });
});

test("E7's example lines parse", () => {
  const lines = [
    'allow udp /bin/ping', 'allow tcp /bin/netcat', 'clear tcp /usr/bin/socat', 'allow /usr/lib/firefox/firefox',
    'clear allow', 'block udp /usr/bin/socat', 'clear block', 'set mode disable', 'get mode', '# comment',
    'query', 'query allow', 'query block', 'quit', 'disconnect', 'allow any /bin/', 'block tcp /usr/bin/',
  ];
  for (const l of lines) assert.ok(parseLine(l, v).isOk(), l);
});

test('blank lines and comments parse to nothing, trailing comments are dropped', () => {
  assert.equal(cmd(''), null);
  assert.equal(cmd('   \t '), null);
  assert.equal(cmd('# allow /bin/x'), null);
  assert.equal(cmd('   # indented comment'), null);
  assert.deepEqual(cmd('allow tcp /bin/x # the editor'), { kind: 'rule', verdict: VAL('allow'), prot: PROT('tcp'), path: '/bin/x', lifetime: { kind: 'always' } });
  fails('query#x', 'unknown-command'); // # starts a comment only at the start of a word
});

test('a # inside a word or inside quotes is part of the path', () => {
  assert.equal(cmd('allow /opt/c#/bin').path, '/opt/c#/bin');
  assert.equal(cmd('allow "/opt/#x"').path, '/opt/#x');
});

test('double-quoted paths may hold spaces, quotes and backslashes', () => {
  assert.equal(cmd('allow tcp "/opt/My App/bin/app"').path, '/opt/My App/bin/app');
  assert.equal(cmd('block "/opt/a b/"').path, '/opt/a b/');
  assert.equal(cmd('allow "/opt/say \\"hi\\""').path, '/opt/say "hi"');
  assert.equal(cmd('allow "/opt/back\\\\slash"').path, '/opt/back\\slash');
  assert.equal(cmd('clear udp "/opt/x y"  # trailing').path, '/opt/x y');
});

test('quote() writes back what the tokenizer reads', () => {
  for (const p of ['/usr/bin/curl', '/opt/My App/x', '/a"b', '/a\\b c', '/tab\there', '/x/']) {
    const t = tokenize(`allow ${quote(p)}`);
    assert.ok(t.isOk());
    assert.equal(t.value[1].text, p);
  }
});

test('an unknown command is an error naming the word', () => {
  assert.match(fails('alow /bin/x', 'unknown-command'), /unknown command 'alow'/);
  fails('"allow" /bin/x', 'unknown-command');
  fails('help nosuch', 'unknown-command');
});

test('a missing path is an error', () => {
  assert.match(fails('allow tcp', 'missing-argument'), /missing PATH after protocol 'tcp'/);
  assert.match(fails('block udp', 'missing-argument'), /PATH/);
  assert.match(fails('clear tcp', 'missing-argument'), /PATH/);
  fails('clear', 'missing-argument');
  fails('load', 'missing-argument');
});

test('a relative path is an error', () => {
  assert.match(fails('allow bin/curl', 'relative-path'), /must be absolute/);
  fails('allow tcp curl', 'relative-path');
  fails('clear tcp ./x', 'relative-path');
  fails('allow ""', 'bad-path');
});

test('an overlong path is an error', () => {
  const long = '/' + 'a'.repeat(S.attrs.path.hi);
  assert.match(fails(`allow ${long}`, 'bad-path'), /longer than/);
  assert.ok(parseLine(`allow ${long.slice(0, -1)}`, v).isOk());
});

test('an unknown protocol is an error listing the known ones', () => {
  const msg = fails('allow sctp /bin/x', 'unknown-protocol');
  for (const p of Object.keys(S.constants.prot)) assert.ok(msg.includes(p), msg);
  fails('clear xyz /bin/x', 'unknown-protocol');
});

test('an unknown flag is an error listing the flags', () => {
  const msg = fails('set nosuch 1', 'unknown-flag');
  for (const f of Object.keys(S.flags)) assert.ok(msg.includes(f), msg);
  fails('get nosuch', 'unknown-flag');
});

test('a value the flag does not allow is an error listing the allowed values', () => {
  const msg = fails('set mode pending', 'bad-value');
  for (const a of S.flags.mode.allowed) assert.ok(msg.includes(a), msg);
  fails('set mode sideways', 'bad-value');
  fails(`set norule ${VAL('pending')}`, 'bad-value');
  fails('set mode -1', 'bad-value');
  fails('set mode', 'missing-argument');
  fails('set', 'missing-argument');
});

test('setting a read-only flag is an error', () => {
  const ro = Object.entries(S.flags).filter(([, f]) => !f.writable);
  assert.ok(ro.length > 0);
  for (const [name] of ro) assert.match(fails(`set ${name} 1`, 'read-only-flag'), /read-only/);
});

test('extra arguments are an error naming them', () => {
  assert.match(fails('allow tcp /bin/x /bin/y', 'extra-arguments'), /\/bin\/y/);
  assert.match(fails('allow /bin/x tcp', 'extra-arguments'), /PROT comes before PATH/);
  fails('enable now', 'extra-arguments');
  fails('query allow block', 'extra-arguments');
  fails('get mode now', 'extra-arguments');
  fails('set mode enabled now', 'extra-arguments');
  fails('stats all', 'extra-arguments');
  fails('quit now', 'extra-arguments');
  fails('bye now', 'extra-arguments');
  fails('save a b', 'extra-arguments');
  fails('clear allow block', 'extra-arguments');
  fails('clear all /bin/x', 'extra-arguments');
});

test('a word where a keyword is expected is an error saying what was expected', () => {
  assert.match(fails('query sideways', 'bad-argument'), /expected allow or block/);
  assert.match(fails('clear everything', 'bad-argument'), /expected/);
});

test('an unterminated quote is an error with its column', () => {
  assert.match(fails('allow "/opt/My App', 'unterminated-quote'), /column 7/);
  fails('allow /opt/a"b', 'stray-quote');
  fails('allow "/opt/a"b', 'stray-quote');
});

test('help lists every command and, for set, every flag with its values', () => {
  const all = help(undefined, v);
  for (const w of ['allow', 'block', 'clear', 'enable', 'query', 'set', 'get', 'stats', 'save', 'load', 'help', 'disconnect', 'quit'])
    assert.match(all, new RegExp(`^  ${w}\\b`, 'm'), w);
  const set = help('set', v);
  for (const [name, f] of Object.entries(S.flags)) {
    assert.match(set, new RegExp(`^  ${name}\\b`, 'm'));
    for (const a of f.allowed) assert.ok(set.includes(a));
  }
});

// ---------------------------------------------------------------- lifetimes and quoting (issue 12)

test('a rule may end with for TIME, until exit or until reboot', () => {
  const rule = (l) => cmd(l).lifetime;
  assert.deepEqual(rule('allow tcp /usr/bin/curl for 30s'), { kind: 'for', seconds: 30 });
  assert.deepEqual(rule('allow tcp /usr/bin/curl for 5m'), { kind: 'for', seconds: 300 });
  assert.deepEqual(rule('allow tcp /usr/bin/curl for 1h'), { kind: 'for', seconds: 3600 });
  assert.deepEqual(rule('block /usr/bin/curl for 2d'), { kind: 'for', seconds: 172800 });
  assert.deepEqual(rule('allow "/opt/My App/app" until exit'), { kind: 'exit' });
  assert.deepEqual(rule('block udp /usr/bin/curl until reboot'), { kind: 'reboot' });
  assert.deepEqual(rule('allow tcp /usr/bin/curl'), { kind: 'always' });
});

test('a bad duration is a clear error', () => {
  assert.match(fails('allow /x for 0s', 'bad-duration'), /longer than zero/);
  assert.match(fails('allow /x for 10', 'bad-duration'), /unit is missing/);
  assert.match(fails('allow /x for 5y', 'bad-duration'), /unknown unit 'y'/);
  assert.match(fails('allow /x for soon', 'bad-duration'), /not a number/);
  const max = 2 ** 32 - 1;
  assert.deepEqual(cmd(`allow /x for ${max}s`).lifetime, { kind: 'for', seconds: max });
  assert.match(fails(`allow /x for ${max + 1}s`, 'bad-duration'), /the longest is/);
  assert.match(fails('allow /x for 99999999d', 'bad-duration'), /the longest is/);
  fails('allow /x for', 'missing-argument');
  assert.match(fails('allow /x until never', 'bad-argument'), /'exit' or 'reboot'/);
  fails('allow /x until', 'missing-argument');
  fails('allow /x for 5m now', 'extra-arguments');
  fails('clear tcp /x for 5m', 'extra-arguments');
});

test('a path with a blank that was not quoted says to quote it', () => {
  assert.match(fails('allow /opt/My App/app', 'unquoted-blank'), /must be quoted: "\/opt\/My App\/app"/);
  assert.match(fails('block tcp /opt/My App/app for 5m', 'unquoted-blank'), /"\/opt\/My App\/app"/);
  assert.match(fails('clear /opt/My App/app', 'unquoted-blank'), /"\/opt\/My App\/app"/);
});

test('Tab completes the lifetime words after a rule\'s PATH, and the lives after until', () => {
  const { complete } = require('../../daemon/dist/lineedit.js');
  const list = () => [];
  assert.equal(complete('allow tcp /usr/bin/curl fo', 26, v, { list }).line, 'allow tcp /usr/bin/curl for ');
  assert.equal(complete('block /usr/bin/curl un', 22, v, { list }).line, 'block /usr/bin/curl until ');
  assert.deepEqual([...complete('allow tcp /usr/bin/curl until ', 30, v, { list }).candidates].sort(), ['exit', 'reboot']);
});
