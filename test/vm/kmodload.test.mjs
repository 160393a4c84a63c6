// README's `sudo make -C kmod load` / `make -C kmod unload`, as written, in
// the build tree: it builds kmod/vordr.ko for the running kernel (Debian's,
// with the host's linux-headers over 9p; the build lands in the VM's
// overlay), loads nf_socket_ipv4/nf_socket_ipv6 first (insmod alone fails
// with "Unknown symbol nf_sk_lookup_slow_v4"), then the module; and refuses
// clearly, pointing to the VM, when the caller may not load modules.
//
// vm-flavors: stock (test/vm/run.sh: not run on the debug kernel in CI:
// README's command is for Debian's kernel and its headers package; the
// debug kernel has nf_socket built in.)
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const name = process.env.VORDR_MODULE || 'vordr';
const repo = process.env.VORDR_REPO ?? new URL('../..', import.meta.url).pathname;
const kmod = join(repo, 'kmod');

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 900_000, ...opts });
  return { code: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
}
const modules = () => readFileSync('/proc/modules', 'utf8');
const loaded = (m) => new RegExp(`^${m} `, 'm').test(modules());

after(() => {
  // Back to the module guest.sh loaded.
  if (loaded(name)) run('rmmod', [name]);
  const r = run('insmod', [process.env.VORDR_KO]);
  if (r.code !== 0) console.error(`reloading ${name} failed: ${r.out}${r.err}`);
});

test('make -C kmod unload, then load: dependencies first, then the module', { skip: name !== 'vordr' && 'dkms flavor' }, (t) => {
  let r = run('make', ['-C', kmod, 'unload']);
  assert.equal(r.code, 0, `make -C kmod unload: ${r.out}${r.err}`);
  assert.ok(!loaded('vordr'), 'vordr is unloaded');
  // Take its dependencies out too, so that load has to load them.
  for (const dep of ['nf_socket_ipv4', 'nf_socket_ipv6']) if (loaded(dep)) run('rmmod', [dep]);
  assert.ok(!loaded('nf_socket_ipv4') && !loaded('nf_socket_ipv6'), `nf_socket_* unloaded:\n${modules()}`);

  r = run('make', ['-C', kmod, 'load']);
  t.diagnostic((r.out + r.err).split('\n').filter((l) => /load|modprobe|insmod|vordr/.test(l)).join('\n'));
  assert.equal(r.code, 0, `make -C kmod load: ${r.out}${r.err}`);
  assert.ok(loaded('vordr'), 'vordr is loaded');
  assert.ok(loaded('nf_socket_ipv4') && loaded('nf_socket_ipv6'), 'its dependencies were loaded first');
  assert.equal(readFileSync(`/sys/module/vordr/parameters/mode`, 'utf8').trim(), 'enabled');
  // The module loaded is the one just built in kmod/: its GNU build ID
  // (readelf) is the note the kernel shows for it in sysfs.
  const id = /Build ID: ([0-9a-f]+)/.exec(run('readelf', ['-n', join(kmod, 'vordr.ko')]).out)?.[1];
  assert.ok(id, 'kmod/vordr.ko has a build ID');
  const note = readFileSync('/sys/module/vordr/notes/.note.gnu.build-id');
  assert.equal(note.subarray(note.length - id.length / 2).toString('hex'), id, 'the loaded module is kmod/vordr.ko');

  // Loading again says so and changes nothing.
  r = run('make', ['-C', kmod, 'load']);
  assert.notEqual(r.code, 0, 'a second load fails');
  assert.match(r.out + r.err, /loaded already/, `it says why: ${r.out}${r.err}`);
  assert.ok(loaded('vordr'));
});

test('kmod/load.sh refuses a caller who may not load modules, and points to the VM', () => {
  const r = run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'sh', join(kmod, 'load.sh'), 'load']);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /loading a module needs root/, r.err);
  assert.match(r.err, /npm run try|\.\/try/, `points to the VM: ${r.err}`);
});
