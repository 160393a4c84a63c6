// Shared helpers of the VM tests (test/vm/*.test.mjs): run programs with a
// time limit, drive the module through the real addon and the real `vordr`
// command, start python agents (a probe and server that runs from any
// executable path, so rules can name it), make network namespaces, reload
// the module, and read the kernel log. Runs as root inside the test VM.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import {
  chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync,
  renameSync, writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { tmpdir } from 'node:os';
import { createInterface } from 'node:readline';

export const repo = process.env.VORDR_REPO ?? new URL('../..', import.meta.url).pathname;
export const cli = join(repo, 'daemon', 'dist', 'cli.js');
export const ko = process.env.VORDR_KO ?? join(repo, 'kmod', 'vordr.ko');
export const moduleName = process.env.VORDR_MODULE ?? 'vordr';
export const flavor = process.env.VORDR_FLAVOR ?? 'stock';

const require = createRequire(import.meta.url);
export const addon = require(join(repo, 'addon', 'index.js'));
export const schema = addon.schema;

/** Constant value by group and name: C.value.block, C.prot.udp, C.reason.rule. */
export const C = Object.fromEntries(Object.entries(schema.constants).map(([g, names]) =>
  [g, Object.fromEntries(Object.entries(names).map(([n, c]) => [n, c.value]))]));
/** Name of a constant value in a group (for messages). */
export function cname(group, value) {
  for (const [n, v] of Object.entries(C[group])) if (v === value) return n;
  return String(value);
}

function which(name) {
  for (const d of ['/usr/bin', '/bin', '/usr/sbin', '/sbin']) {
    const p = join(d, name);
    if (existsSync(p)) return realpathSync(p);
  }
  return null;
}

/** Real paths of the programs the tests run (null when not installed). */
export const bin = {
  curl: which('curl'),
  socat: which('socat'),
  python: which('python3'),
  nc: which('nc'),
  ping: which('ping'),
  ip: which('ip'),
};

/** A fresh world-readable directory for one test file. */
export function workdir(tag) {
  const d = mkdtempSync(join(tmpdir(), `vordr-${tag}-`));
  chmodSync(d, 0o755);
  return d;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Every long-lived child a test starts, so a failed test cannot leave one
// behind that keeps node --test (and the VM) from ending.
const live = new Set();

/** Registers a child process (or anything with kill()) until it closes. */
export function track(child) {
  live.add(child);
  child.on?.('close', () => live.delete(child));
  return child;
}

/** Kills every tracked child still running (call from each file's after()). */
export function killAll() {
  for (const c of live) {
    try { c.kill('SIGKILL'); } catch { /* gone */ }
  }
  live.clear();
}

/** Synchronous run with a time limit; never throws. */
export function run(cmd, args, opts = {}) {
  const t0 = Date.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 30_000, maxBuffer: 64 << 20, ...opts });
  return {
    code: r.status, signal: r.signal, out: r.stdout ?? '', err: r.stderr ?? '',
    error: r.error, ms: Date.now() - t0,
  };
}

/** Asynchronous run with a time limit (SIGKILL at the end); resolves, never rejects. */
export function runAsync(cmd, args, { timeout = 30_000, input, ...opts } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    let out = '';
    let err = '';
    let child;
    try {
      child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], ...opts });
    } catch (error) {
      resolve({ code: null, signal: null, out, err: String(error), error, ms: 0 });
      return;
    }
    track(child);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
    child.stdout.setEncoding('utf8').on('data', (d) => { out += d; });
    child.stderr.setEncoding('utf8').on('data', (d) => { err += d; });
    child.on('error', (error) => { err += String(error); });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out, err, ms: Date.now() - t0, pid: child.pid });
    });
    child.stdin.on('error', () => {});
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

/** Polls pred (sync or async) every 50 ms until it is truthy or ms pass. */
export async function waitFor(pred, what, ms = 10_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** Runs lines through `vordr -f`, as root unless `user` (a uid) is given. */
export function vordr(lines, { user, dir = tmpdir() } = {}) {
  const file = join(dir, `cmds-${process.pid}-${Math.random().toString(36).slice(2)}.vordr`);
  writeFileSync(file, lines.join('\n') + '\n');
  chmodSync(file, 0o644);
  const argv = [cli, '-f', file];
  if (user === undefined) return run(process.execPath, argv);
  return asUser(user, process.execPath, argv);
}

/** Runs lines through `vordr -f` as root and asserts they all succeeded; returns its output. */
export function vordrOk(lines, opts) {
  const r = vordr(lines, opts);
  assert.equal(r.code, 0, `vordr ${lines.join('; ')}: ${r.out}${r.err}`);
  return r.out;
}

/** Runs a command as an unprivileged uid/gid with no groups and no capabilities. */
export function asUser(uid, cmd, args, opts = {}) {
  return run('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups',
    '--inh-caps=-all', cmd, ...args], opts);
}

/** Copies an executable to dest (creating its directory), mode 0755; returns dest. */
export function copyExe(src, dest) {
  mkdirSync(dirname(dest), { recursive: true, mode: 0o755 });
  const tmp = `${dest}.tmp-${process.pid}`;
  copyFileSync(src, tmp);
  chmodSync(tmp, 0o755);
  renameSync(tmp, dest);
  return dest;
}

// ---- the module through the addon ------------------------------------------

/**
 * A connection to the module with helpers by name. Events are collected
 * from subscribe() on; `events` holds them all (oldest first).
 */
export class Kernel {
  static async open() {
    const k = new Kernel();
    k.conn = await addon.open();
    return k;
  }

  events = [];
  lost = 0;
  #waiters = new Set();

  request(cmd, attrs) { return this.conn.request(cmd, attrs); }

  async flag(name) {
    const [r] = await this.request('flag_get', { flag: schema.flags[name].id });
    return Number(r.value);
  }

  async flagName(name) { return cname('value', await this.flag(name)); }

  async set(name, value) {
    const v = typeof value === 'string' ? C.value[value] : value;
    assert.notEqual(v, undefined, `no value ${value}`);
    await this.request('flag_set', { flag: schema.flags[name].id, value: v });
  }

  async add(verdict, prot, path, { timeout } = {}) {
    await this.request('rule_add', {
      verdict: C.value[verdict], prot: C.prot[prot], path, timeout,
    });
  }

  async del(path, prot) {
    await this.request('rule_del', { path, prot: prot === undefined ? undefined : C.prot[prot] });
  }

  async clear(verdict) {
    await this.request('rule_clear', { verdict: verdict === undefined ? undefined : C.value[verdict] });
  }

  /** The rule table: [{ verdict, prot, path, packets, bytes, timeout? }], names for numbers. */
  async rules() {
    const list = await this.request('rule_list');
    return list.map((r) => ({
      ...r, verdict: cname('value', r.verdict), prot: cname('prot', r.prot),
    }));
  }

  /** Default flags and no rules. */
  async reset() {
    await this.clear();
    for (const [name, f] of Object.entries(schema.flags)) {
      if (f.writable && (await this.flag(name)) !== f.default) await this.set(name, f.default);
    }
  }

  subscribe() {
    this.conn.subscribe((e) => {
      if (e.lost) { this.lost++; return; }
      const ev = { ...e, t: Date.now() };
      this.events.push(ev);
      for (const w of this.#waiters) w(ev);
    });
  }

  /** Events seen so far that match pred. */
  matching(pred) { return this.events.filter(pred); }

  /** The first event (already seen or coming within ms) matching pred. */
  waitEvent(pred, ms = 5000, what = 'an event') {
    const seen = this.events.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = (ev) => {
        if (!pred(ev)) return;
        clearTimeout(timer);
        this.#waiters.delete(w);
        resolve(ev);
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(w);
        reject(new Error(`no ${what} within ${ms} ms; ${this.events.length} events seen, last: ` +
          JSON.stringify(this.events.slice(-3), bigintJson)));
      }, ms);
      this.#waiters.add(w);
    });
  }

  /** Calls fn(event) for every event from now on until the returned function is called. */
  onEvent(fn) {
    this.#waiters.add(fn);
    return () => this.#waiters.delete(fn);
  }

  close() { this.conn?.close(); }
}

export function bigintJson(_k, v) {
  return typeof v === 'bigint' ? v.toString() : Buffer.isBuffer(v) ? v.toString('hex') : v;
}

/** An event's address as text (a Buffer of 4 or 16 bytes). */
export function addr(buf) {
  if (!Buffer.isBuffer(buf)) return String(buf);
  if (buf.length === 4) return [...buf].join('.');
  const parts = [];
  for (let i = 0; i < 16; i += 2) parts.push(buf.readUInt16BE(i).toString(16));
  return parts.join(':').replace(/(^|:)0(:0)+(:|$)/, '::').replace(/:{3,}/, '::');
}

// ---- module load and unload ---------------------------------------------------

export function loaded() {
  return readFileSync('/proc/modules', 'utf8').split('\n').some((l) => l.split(' ')[0] === moduleName);
}

export function rmmod() { return run('rmmod', [moduleName]); }

export function insmod(params = []) { return run('insmod', [ko, ...params]); }

/** Leaves the module loaded with default parameters (what guest.sh expects at the end). */
export function reloadDefault() {
  if (loaded()) {
    const r = rmmod();
    assert.equal(r.code, 0, `rmmod: ${r.err}`);
  }
  const i = insmod();
  assert.equal(i.code, 0, `insmod: ${i.err}`);
}

// ---- kernel log -------------------------------------------------------------------

const BAD = /WARNING:|BUG:|Oops|Kernel panic|general protection fault|possible circular locking|possible recursive locking|inconsistent lock state|suspicious RCU usage|lockdep|KASAN|UBSAN|self-detected stall|rcu: INFO|soft lockup|hung_task|unreferenced object|Call Trace:|refcount_t|list_add corruption|list_del corruption/;
const BENIGN = /Command line:|command line:|RCU lockdep checking is enabled/;

function klogLines() {
  return run('dmesg', []).out.split('\n').filter(Boolean);
}

/** Marks the kernel log: klogBad(mark) returns the bad lines written after it. */
export function klogMark() { return klogLines().length; }

export function klogSince(mark) { return klogLines().slice(mark); }

export function klogBad(mark) {
  return klogSince(mark).filter((l) => BAD.test(l) && !BENIGN.test(l));
}

export function assertKlogClean(mark, what = 'this test') {
  const bad = klogBad(mark);
  assert.deepEqual(bad, [], `kernel log after ${what}:\n${klogSince(mark).slice(-60).join('\n')}`);
}

// ---- /proc/slabinfo -----------------------------------------------------------------

/** Active objects of the named slab caches. */
export function slabActive(names) {
  const out = {};
  for (const l of readFileSync('/proc/slabinfo', 'utf8').split('\n')) {
    const f = l.split(/\s+/);
    if (names.includes(f[0])) out[f[0]] = Number(f[1]);
  }
  return out;
}

// ---- network namespaces --------------------------------------------------------------

/**
 * `ip netns add NAME` and a veth pair: host side 10.77.N.1/24 and fd77:N::1/64,
 * namespace side .2 and ::2, both up (IPv6 without DAD). Returns the addresses.
 */
export function makeNetns(name, n) {
  const hostIf = `vh${n}`;
  const nsIf = `vn${n}`;
  const cmds = [
    ['netns', 'add', name],
    ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf, 'netns', name],
    ['addr', 'add', `10.77.${n}.1/24`, 'dev', hostIf],
    ['-6', 'addr', 'add', `fd77:${n}::1/64`, 'dev', hostIf, 'nodad'],
    ['link', 'set', hostIf, 'up'],
    ['-n', name, 'addr', 'add', `10.77.${n}.2/24`, 'dev', nsIf],
    ['-n', name, '-6', 'addr', 'add', `fd77:${n}::2/64`, 'dev', nsIf, 'nodad'],
    ['-n', name, 'link', 'set', nsIf, 'up'],
    ['-n', name, 'link', 'set', 'lo', 'up'],
  ];
  for (const c of cmds) {
    const r = run('ip', c);
    assert.equal(r.code, 0, `ip ${c.join(' ')}: ${r.err}`);
  }
  return {
    name, hostIf, nsIf,
    v4host: `10.77.${n}.1`, v4ns: `10.77.${n}.2`, v6host: `fd77:${n}::1`, v6ns: `fd77:${n}::2`,
  };
}

export function delNetns(name) {
  run('ip', ['netns', 'del', name]);
}

/**
 * A fresh `ip netns add NAME` with only its loopback, up (one left from an
 * earlier run is removed first). Returns a run() that runs a command in it.
 */
export function loopbackNetns(name) {
  delNetns(name);
  for (const c of [['netns', 'add', name], ['-n', name, 'link', 'set', 'lo', 'up']]) {
    const r = run('ip', c);
    assert.equal(r.code, 0, `ip ${c.join(' ')}: ${r.err}`);
  }
  return (...argv) => run('nsenter', [`--net=/run/netns/${name}`, ...argv]);
}

// ---- python agent ----------------------------------------------------------------------

// A probe and server in one python process, driven by JSON lines on stdin:
// it runs from whatever executable path a test copies python to, so the
// module sees that path as the owner of every socket it opens.
const AGENT = String.raw`
import errno, json, os, socket, struct, sys, threading, time, array
socks = {}
servers = {}
lock = threading.Lock()

def ename(e):
    if isinstance(e, socket.timeout):
        return 'TIMEOUT'
    if isinstance(e, OSError) and e.errno:
        return errno.errorcode.get(e.errno, str(e.errno))
    return type(e).__name__ + ':' + str(e)

def fam(host):
    return socket.AF_INET6 if ':' in host else socket.AF_INET

def tcp_exchange(s, data, timeout):
    s.settimeout(timeout)
    s.sendall((data + '\n').encode())
    buf = b''
    while not buf.endswith(b'\n'):
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf.decode().strip()

def serve_tcp_conn(name, c):
    f = c.makefile('rb')
    try:
        for line in f:
            line = line.decode().strip()
            with lock:
                servers[name]['seen'].append(line)
            c.sendall(('echo:' + line + '\n').encode())
    except OSError:
        pass
    finally:
        c.close()

def serve_tcp(name, s):
    while True:
        try:
            c, _ = s.accept()
        except OSError:
            return
        threading.Thread(target=serve_tcp_conn, args=(name, c), daemon=True).start()

def serve_udp(name, s):
    while True:
        try:
            data, peer = s.recvfrom(65535)
        except OSError:
            return
        with lock:
            servers[name]['seen'].append(data.decode(errors='replace').strip())
        if servers[name].get('reply'):
            try:
                s.sendto(b'echo:' + data, peer)
            except OSError:
                pass

def op_tcp(a):
    s = socket.socket(fam(a['host']), socket.SOCK_STREAM)
    try:
        if a.get('bind'):
            s.bind((a['bind'], 0))
        s.settimeout(a.get('timeout', 3))
        s.connect((a['host'], a['port']))
        return {'ok': True, 'reply': tcp_exchange(s, a.get('data', 'hi'), a.get('timeout', 3))}
    finally:
        s.close()

def op_udp(a):
    s = socket.socket(fam(a['host']), socket.SOCK_DGRAM)
    try:
        n = 0
        errs = {}
        for i in range(a.get('count', 1)):
            try:
                s.sendto((a.get('data', 'hi') + ('' if a.get('count', 1) == 1 else '-%d' % i)).encode(), (a['host'], a['port']))
                n += 1
            except OSError as e:
                errs[ename(e)] = errs.get(ename(e), 0) + 1
        if n == a.get('count', 1):
            return {'ok': True, 'sent': n}
        return {'ok': False, 'sent': n, 'err': ','.join(errs), 'errs': errs}
    finally:
        s.close()

def op_open(a):
    kind = socket.SOCK_STREAM if a['kind'] == 'tcp' else socket.SOCK_DGRAM
    s = socket.socket(fam(a['host']), kind)
    if a['kind'] == 'tcp':
        s.settimeout(a.get('timeout', 3))
        s.connect((a['host'], a['port']))
    socks[a['name']] = s
    return {'ok': True, 'fd': s.fileno()}

def op_send(a):
    s = socks[a['name']]
    if s.type == socket.SOCK_STREAM:
        return {'ok': True, 'reply': tcp_exchange(s, a.get('data', 'hi'), a.get('timeout', 3))}
    s.sendto(a.get('data', 'hi').encode(), (a['host'], a['port']))
    return {'ok': True}

def op_close(a):
    socks.pop(a['name']).close()
    return {'ok': True}

def op_listen(a):
    if a['kind'] == 'http':
        import http.server
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                with lock:
                    servers[a['name']]['seen'].append(self.path)
                self.send_response(200)
                self.send_header('Content-Length', '3')
                self.end_headers()
                self.wfile.write(b'ok\n')
            def log_message(self, *args):
                pass
        class S(http.server.ThreadingHTTPServer):
            address_family = fam(a['host'])
            daemon_threads = True
        srv = S((a['host'], a.get('port', 0)), H)
        servers[a['name']] = {'sock': srv.socket, 'seen': []}
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        return {'ok': True, 'port': srv.server_address[1]}
    kind = socket.SOCK_STREAM if a['kind'] == 'tcp' else socket.SOCK_DGRAM
    s = socket.socket(fam(a['host']), kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((a['host'], a.get('port', 0)))
    servers[a['name']] = {'sock': s, 'seen': [], 'reply': a.get('reply', False)}
    if a['kind'] == 'tcp':
        s.listen(64)
        threading.Thread(target=serve_tcp, args=(a['name'], s), daemon=True).start()
    else:
        threading.Thread(target=serve_udp, args=(a['name'], s), daemon=True).start()
    return {'ok': True, 'port': s.getsockname()[1]}

def op_seen(a):
    with lock:
        return {'ok': True, 'seen': list(servers[a['name']]['seen'])}

def op_fork_send(a):
    # A child that uses the inherited socket a['name'], then exits.
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            res = op_send(a)
        except Exception as e:
            res = {'ok': False, 'err': ename(e)}
        res['pid'] = os.getpid()
        os.write(w, json.dumps(res).encode())
        os._exit(0)
    os.close(w)
    data = b''
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)

def op_forks(a):
    # a['n'] short-lived children, each a fresh UDP socket and one datagram.
    res = {'ok': 0, 'errs': {}, 'pids': []}
    for i in range(a['n']):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                s = socket.socket(fam(a['host']), socket.SOCK_DGRAM)
                s.sendto(('%s-%d' % (a.get('data', 'fork'), i)).encode(), (a['host'], a['port']))
            except OSError as e:
                code = 10 + (e.errno or 0)
            os._exit(code)
        _, st = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(st)
        res['pids'].append(pid)
        if code == 0:
            res['ok'] += 1
        else:
            n = errno.errorcode.get(code - 10, str(code))
            res['errs'][n] = res['errs'].get(n, 0) + 1
    return res

def op_send_fd(a):
    # Pass socket a['name'] over SCM_RIGHTS to the unix socket at a['path'].
    u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    u.connect(a['path'])
    socket.send_fds(u, [b'x'], [socks[a['name']].fileno()])
    u.close()
    return {'ok': True}

def op_recv_fd(a):
    # Accept one SCM_RIGHTS socket on unix path a['path'] as a['name'] (in a thread).
    l = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    l.bind(a['path'])
    l.listen(1)
    def go():
        c, _ = l.accept()
        _, fds, _, _ = socket.recv_fds(c, 16, 4)
        socks[a['name']] = socket.socket(fileno=fds[0])
        c.close()
        l.close()
    threading.Thread(target=go, daemon=True).start()
    return {'ok': True}

def op_handover(a):
    # The agent forks; the child answers and carries on serving requests
    # with every socket, the parent exits: sockets outlive the process
    # that opened (and was learnt from) them.
    parent = os.getpid()
    if os.fork() == 0:
        return {'ok': True, 'pid': os.getpid(), 'parent': parent}
    os._exit(0)

def op_burst(a):
    # a['n'] datagrams, each from a socket of its own (the known-socket
    # cache learns every one): counts of successes and errno names.
    res = {'ok': 0, 'errs': {}}
    f = fam(a['host'])
    for i in range(a['n']):
        s = socket.socket(f, socket.SOCK_DGRAM)
        try:
            s.sendto(b'b', (a['host'], a['port']))
            res['ok'] += 1
        except OSError as e:
            res['errs'][ename(e)] = res['errs'].get(ename(e), 0) + 1
        s.close()
    return res

def op_has(a):
    return {'ok': a['name'] in socks}

def op_exit(a):
    sys.stdout.flush()
    os._exit(0)

OPS = {k[3:]: v for k, v in globals().items() if k.startswith('op_')}

def main():
    sys.stdout.write(json.dumps({'ready': True, 'pid': os.getpid()}) + '\n')
    sys.stdout.flush()
    for line in sys.stdin:
        req = json.loads(line)
        try:
            out = OPS[req['op']](req)
        except Exception as e:
            out = {'ok': False, 'err': ename(e)}
        out['id'] = req['id']
        sys.stdout.write(json.dumps(out) + '\n')
        sys.stdout.flush()

main()
`;

let agentScript;
function agentFile() {
  if (!agentScript) {
    const d = workdir('agent');
    agentScript = join(d, 'agent.py');
    writeFileSync(agentScript, AGENT);
    chmodSync(agentScript, 0o644);
  }
  return agentScript;
}

/**
 * A python agent running from executable `exe` (a copy of python3, or
 * python3 itself), optionally inside network namespace `netns` or as `uid`.
 * call(op, args) sends one request and resolves with its answer.
 */
export class Agent {
  static async start(exe, { netns, uid, handover } = {}) {
    const a = new Agent();
    let cmd = exe;
    let args = ['-S', '-u', agentFile()];
    if (handover) {
      // Node closes a child's stdin when the child exits: a shell stays
      // Node's child so the pipes outlive the python that hands over.
      args = ['-c', '"$0" "$@"; exec sleep 100000', cmd, ...args];
      cmd = '/bin/sh';
    }
    if (uid !== undefined) {
      args = [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', cmd, ...args];
      cmd = 'setpriv';
    }
    if (netns) {
      // nsenter: the network namespace only (ip netns exec also makes a
      // mount namespace, under which the module trusts no path).
      args = [`--net=/run/netns/${netns}`, cmd, ...args];
      cmd = 'nsenter';
    }
    a.exe = exe;
    a.child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    track(a.child);
    live.add(a);
    a.child.on('close', () => live.delete(a));
    a.child.stderr.setEncoding('utf8').on('data', (d) => { a.stderr += d; });
    a.child.stdin.on('error', () => {});
    const rl = createInterface({ input: a.child.stdout });
    const ready = new Promise((resolve, reject) => {
      a.child.on('exit', (code) => {
        a.exited = true;
        reject(new Error(`agent ${exe} exited (${code}): ${a.stderr}`));
        for (const p of a.pending.values()) p.reject(new Error(`agent ${exe} exited: ${a.stderr}`));
      });
      rl.on('line', (line) => {
        const m = JSON.parse(line);
        if (m.ready) { a.pid = m.pid; resolve(); return; }
        const p = a.pending.get(m.id);
        if (p) { a.pending.delete(m.id); p.resolve(m); }
      });
    });
    const timer = setTimeout(() => a.child.kill('SIGKILL'), 60_000);
    try { await ready; } finally { clearTimeout(timer); }
    return a;
  }

  stderr = '';
  pending = new Map();
  next = 1;

  call(op, args = {}, ms = 30_000) {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`agent ${this.exe}: ${op} got no answer in ${ms} ms`));
      }, ms);
      this.pending.set(id, {
        resolve: (m) => { clearTimeout(timer); resolve(m); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      this.child.stdin.write(JSON.stringify({ id, op, ...args }) + '\n');
    });
  }

  /** One UDP datagram from a fresh socket: 'ok' or the errno name. */
  async udp(host, port, data = 'hi', extra = {}) {
    const r = await this.call('udp', { host, port, data, ...extra });
    return r.ok ? 'ok' : r.err;
  }

  /** A fresh TCP connection, one line each way: 'ok' or the error name. */
  async tcp(host, port, data = 'hi', timeout = 3, extra = {}) {
    const r = await this.call('tcp', { host, port, data, timeout, ...extra });
    return r.ok ? (r.reply === `echo:${data}` ? 'ok' : `bad reply ${r.reply}`) : r.err;
  }

  async listen(kind, host, name = `${kind}-${host}`, extra = {}) {
    const r = await this.call('listen', { kind, host, name, ...extra });
    assert.ok(r.ok, `listen ${kind} ${host}: ${r.err}`);
    return r.port;
  }

  async seen(name) {
    const r = await this.call('seen', { name });
    assert.ok(r.ok, r.err);
    return r.seen;
  }

  /** The agent forks and its parent exits; the child goes on with every socket. */
  async handover() {
    this.handedOver = true;
    const r = await this.call('handover');
    assert.ok(r.ok, r.err);
    this.pid = r.pid;
    return r;
  }

  kill() {
    try { if (this.pid) process.kill(this.pid, 'SIGKILL'); } catch { /* gone */ }
    if (!this.exited) this.child.kill('SIGKILL');
  }
}

// ---- background traffic -------------------------------------------------------------------

const TRAFFIC = String.raw`
import errno, json, os, socket, sys, time
host, tport, uport, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
fam = socket.AF_INET6 if ':' in host else socket.AF_INET
res = {'tcp_ok': 0, 'tcp_fail': {}, 'udp_ok': 0, 'udp_fail': {}, 'iters': 0}
def bump(d, k):
    d[k] = d.get(k, 0) + 1
def ename(e):
    return 'TIMEOUT' if isinstance(e, socket.timeout) else errno.errorcode.get(e.errno, str(e.errno))
u = socket.socket(fam, socket.SOCK_DGRAM)
i = 0
print('started', flush=True)
while not os.path.exists(stop):
    i += 1
    if i % 8 == 0:   # new sockets keep the known-socket cache learning
        u.close()
        u = socket.socket(fam, socket.SOCK_DGRAM)
    try:
        u.sendto(b'traffic-%d' % i, (host, uport))
        res['udp_ok'] += 1
    except OSError as e:
        bump(res['udp_fail'], ename(e))
    if tport:
        try:
            s = socket.create_connection((host, tport), timeout=2)
            s.settimeout(2)
            s.sendall(b'x\n')
            d = s.recv(100)
            s.close()
            if d.startswith(b'echo:'):
                res['tcp_ok'] += 1
            else:
                bump(res['tcp_fail'], 'short')
        except OSError as e:
            bump(res['tcp_fail'], ename(e))
    time.sleep(0.002)
res['iters'] = i
print(json.dumps(res))
`;

/**
 * A python program (run from `exe`) sending UDP datagrams (a new socket
 * every 8th) and, when tcpPort is not 0, making a TCP exchange per round,
 * until stop() is called; `ready` resolves once it runs, stop() with its counts.
 */
export class Traffic {
  constructor(exe, host, tcpPort, udpPort, { dir = tmpdir(), netns } = {}) {
    const script = join(dir, `traffic-${Math.random().toString(36).slice(2)}.py`);
    writeFileSync(script, TRAFFIC);
    this.stopFile = `${script}.stop`;
    let argv = [exe, '-S', script, host, String(tcpPort), String(udpPort), this.stopFile];
    if (netns) argv = ['nsenter', `--net=/run/netns/${netns}`, ...argv];
    const child = track(spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] }));
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
    this.ready = new Promise((resolve) => {
      child.stdout.setEncoding('utf8').on('data', (d) => {
        out += d;
        if (out.includes('started')) resolve();
      });
      child.on('close', resolve);
    });
    child.stderr.setEncoding('utf8').on('data', (d) => { err += d; });
    this.done = new Promise((resolve) => child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out, err });
    }));
  }

  async stop() {
    writeFileSync(this.stopFile, '');
    const r = await this.done;
    assert.equal(r.code, 0, `traffic program failed (${r.code} ${r.signal}): ${r.err}`);
    return JSON.parse(r.out.split('\n').filter(Boolean).pop());
  }
}
