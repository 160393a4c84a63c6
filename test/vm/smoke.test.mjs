// Runs inside the test VM (test/vm/run.sh): the module under test
// (vordr.ko, or whatever VORDR_KO named) must be loaded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';

const name = process.env.VORDR_MODULE || 'vordr';

test('runs inside the VM as root', () => {
  assert.ok(process.env.VORDR_FLAVOR, 'VORDR_FLAVOR is set by guest.sh');
  assert.equal(process.getuid(), 0);
});

test(`module ${name} is loaded`, () => {
  assert.ok(existsSync(`/sys/module/${name}`), `/sys/module/${name} exists`);
  const mods = readFileSync('/proc/modules', 'utf8').split('\n').filter(Boolean);
  console.log(`/proc/modules:\n${mods.map((l) => `  ${l}`).join("\n")}`);
  const line = mods.find((l) => l.split(' ')[0] === name);
  assert.ok(line, `${name} listed in /proc/modules`);
  // "name size refcount deps state address": the module must be Live.
  assert.equal(line.split(' ')[4], 'Live');
});
