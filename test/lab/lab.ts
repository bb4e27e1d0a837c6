// A lab of several libvirt "hosts" on one machine. Each host is a libvirtd in
// its own mount (and UTS) namespace with private /run/libvirt, /var/lib/libvirt,
// /etc/libvirt, /var/log/libvirt, /var/cache/libvirt and instances folder,
// listening on TCP at 127.0.0.(base+N), or, with a split migration network,
// at its migration address 127.0.0.(migrationBase+N) while its consoles stay
// on the first; optionally with native TLS for migrations.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, writeFileSync, cpSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { makeCa, makeLeaf, type CertFiles } from './certs.js';
import { run, runSync, sleep, sleepSync, waitFor, type ExecOptions, type ExecResult } from './exec.js';

export const LAB_BASE_DIR = process.env.FERRY_LAB_DIR ?? '/var/lib/ferry-lab';
/** The instances folder as every host sees it (bind-mounted per host, like a real host's local disk). */
export const LAB_INSTANCES_PATH = '/var/lib/ferry-lab/instances';
const HOST_NAMES = 'abcdefghijklmnopqrstuvwxyz';

/** Folders each host gets privately: path inside the host -> sub-folder of the host root. */
const PRIVATE_DIRS: ReadonlyArray<[string, string]> = [
  ['/run/libvirt', 'run'],
  ['/var/lib/libvirt', 'lib'],
  ['/etc/libvirt', 'etc'],
  ['/var/log/libvirt', 'log'],
  ['/var/cache/libvirt', 'cache'],
  [LAB_INSTANCES_PATH, 'instances'],
];

export interface LabHost {
  /** 'a', 'b', ... */
  readonly name: string;
  /** 1-based */
  readonly index: number;
  /** 127.0.0.(base+index): the management address (consoles, ferryd's metrics). */
  readonly addr: string;
  /**
   * 127.0.0.(migrationBase+index), else addr: where libvirtd and incoming
   * migrations (memory, NBD) listen, as Nova's live_migration_inbound_addr
   * serves both the peer connection and the streams.
   */
  readonly migrationAddr: string;
  /** qemu+tcp://<migrationAddr>/system */
  readonly uri: string;
  /** The folder of the host's migration TLS certificates (qemu.conf migrate_tls_x509_cert_dir), when the lab has TLS. */
  readonly tlsDir: string | null;
  /**
   * The host's own Linux bridge for guest NICs, when the lab has bridges:
   * each host's has another name, as Neutron's linuxbridge agent names them
   * per network and host. No uplink: frames stay on it.
   */
  readonly bridge: string | null;
  /** The host's hostname inside its UTS namespace, e.g. ferry-lab-a. */
  readonly hostname: string;
  /** Per-host folder in the test process's view. */
  readonly root: string;
  /** Instances folder as seen inside the host (same on every host). */
  readonly instancesPath: string;
  /** Where that folder really lives, readable from the test process. */
  readonly hostInstancesDir: string;
  /** The libvirtd log file, readable from the test process. */
  readonly logFile: string;
  /** The libvirtd now serving the host (a new one after restartLibvirtd). */
  readonly libvirtdPid: number;
  /**
   * Starts the host's libvirtd again after it died (killed by a test), with
   * the same folders and config: what a supervisor does after a crash.
   */
  restartLibvirtd(): Promise<void>;
  /** Runs a command inside the host's mount and UTS namespaces. */
  exec(cmd: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Spawns a long-running process inside the host's namespaces (e.g. a ferryd agent). */
  spawnIn(cmd: string, args: string[], opts?: SpawnOptions): ChildProcess;
  /** `virsh -c <uri> ...` */
  virsh(args: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** PIDs of the QEMU processes this host's libvirtd runs now. */
  qemuPids(): number[];
}

export interface Lab {
  readonly name: string;
  /** /var/lib/ferry-lab/<name>-<pid> */
  readonly root: string;
  readonly hosts: LabHost[];
  /** A folder every host and the test process see at the same path (volume backing files). */
  readonly sharedDir: string;
  stop(): Promise<void>;
}

export interface StartLabOptions {
  hosts: number;
  /** Default 'lab'. Stale labs of the same name left by dead processes are cleaned first. */
  name?: string;
  /** Host N gets 127.0.0.(addrBase+N); default 10. */
  addrBase?: number;
  /** A split migration network: host N's libvirtd and incoming migrations at 127.0.0.(migrationAddrBase+N). */
  migrationAddrBase?: number;
  /** Native TLS for migrations (qemu.conf migrate_tls_x509_verify): a throwaway CA signs each host's server and client certificates. */
  tls?: boolean;
  /** A Linux bridge per host (LabHost.bridge). */
  bridges?: boolean;
  /** libvirtd log level for log_outputs (1 debug .. 4 error); default 3. */
  logLevel?: number;
  /** How long to wait for each libvirtd to answer; default 60 s. */
  startTimeoutMs?: number;
}

interface HostState {
  name: string;
  root: string;
  /** The host's Linux bridge, when the lab has bridges: removed with the lab. */
  bridge?: string;
  libvirtdPid?: number;
  mntNs?: string;
}
interface LabState {
  ownerPid: number;
  hosts: HostState[];
}

// ---------------------------------------------------------------- cleanup

const activeLabs = new Map<string, LabState>();
/** Exit of the libvirtd children this process spawned, so stop() can wait until they are reaped. */
const childExits = new Map<number, Promise<void>>();
let hooksInstalled = false;

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const [root, state] of activeLabs) cleanupLabSync(root, state);
    activeLabs.clear();
  });
  let exiting = false;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    // process.on, not once: a second signal during cleanup (e.g. from both a
    // wrapper and the terminal) must not kill us halfway through.
    process.on(sig, () => {
      if (exiting) return;
      exiting = true;
      for (const [root, state] of activeLabs) cleanupLabSync(root, state);
      activeLabs.clear();
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
    });
  }
}

function readProc(pid: number, what: string): string | undefined {
  try {
    return what === 'ns/mnt' ? readlinkSync(`/proc/${pid}/ns/mnt`) : readFileSync(`/proc/${pid}/${what}`, 'utf8');
  } catch {
    return undefined;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie is as good as dead for our purposes.
  const stat = readProc(pid, 'stat');
  return stat !== undefined && !/^\d+ \(.*\) Z/.test(stat);
}

function cmdlineOf(pid: number): string {
  return (readProc(pid, 'cmdline') ?? '').replace(/\0/g, ' ');
}

/** Processes that belong to a host: libvirtd by pid, QEMUs by pidfile, anything in its mount namespace. */
function hostPids(h: HostState): number[] {
  const pids = new Set<number>();
  const matches = (pid: number, nameRe: RegExp): boolean => {
    if (!isAlive(pid)) return false;
    if (!nameRe.test(cmdlineOf(pid))) return false;
    if (h.mntNs !== undefined) return readProc(pid, 'ns/mnt') === h.mntNs;
    return true;
  };
  const lvPids: number[] = [];
  if (h.libvirtdPid) lvPids.push(h.libvirtdPid);
  const pf = join(h.root, 'libvirtd.pid');
  const filePid = Number.parseInt(readFileSafe(pf), 10);
  if (Number.isFinite(filePid)) lvPids.push(filePid);
  for (const p of lvPids) if (matches(p, /libvirtd/)) pids.add(p);
  const qemuRun = join(h.root, 'run', 'qemu');
  if (existsSync(qemuRun)) {
    for (const f of readdirSync(qemuRun)) {
      if (!f.endsWith('.pid')) continue;
      const p = Number.parseInt(readFileSync(join(qemuRun, f), 'utf8'), 10);
      if (Number.isFinite(p) && matches(p, /qemu/)) pids.add(p);
    }
  }
  if (h.mntNs !== undefined) {
    for (const e of readdirSync('/proc')) {
      if (!/^\d+$/.test(e)) continue;
      const p = Number(e);
      if (p !== process.pid && readProc(p, 'ns/mnt') === h.mntNs) pids.add(p);
    }
  }
  return [...pids];
}

/** Kills what a lab started, detaches its loop devices, removes its folder. Synchronous for exit hooks. */
function cleanupLabSync(root: string, state: LabState | undefined): void {
  const hosts = state?.hosts ?? [];
  const pids = hosts.flatMap(hostPids);
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  const deadline = Date.now() + 15_000;
  while (pids.some(isAlive) && Date.now() < deadline) sleepSync(50);
  for (const h of hosts) saveCapsCache(join(h.root, 'cache'));
  for (const h of hosts) if (h.bridge) runSync('ip', ['link', 'del', h.bridge]);
  // Loop devices whose backing file is inside the lab.
  for (const { dev } of loopDevicesUnder(root)) runSync('losetup', ['-d', dev]);
  rmSync(root, { recursive: true, force: true });
}

export function loopDevicesUnder(dir: string): { dev: string; file: string }[] {
  const r = runSync('losetup', ['--list', '--noheadings', '--raw', '--output', 'NAME,BACK-FILE']);
  const out: { dev: string; file: string }[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^(\S+) (.*)$/.exec(line.trim());
    if (!m) continue;
    const file = m[2]!.replace(/ \(deleted\)$/, '');
    if (file.startsWith(`${dir}/`)) out.push({ dev: m[1]!, file });
  }
  return out;
}

function readState(root: string): LabState | undefined {
  try {
    return JSON.parse(readFileSync(join(root, 'state.json'), 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}

function checkedSync(cmd: string, args: readonly string[]): void {
  const r = runSync(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr.trim()}`);
}

function writeState(root: string, state: LabState): void {
  writeFileSync(join(root, 'state.json'), JSON.stringify(state, null, 2));
}

/** Removes labs named `name` whose owning process is gone (startLab does this itself). */
export function cleanStaleLabs(name: string): void {
  if (!existsSync(LAB_BASE_DIR)) return;
  const re = new RegExp(`^${name.replace(/[^A-Za-z0-9_-]/g, '')}-(\\d+)$`);
  for (const entry of readdirSync(LAB_BASE_DIR)) {
    const m = re.exec(entry);
    if (!m) continue;
    const owner = Number(m[1]);
    if (owner === process.pid) continue;
    if (isAlive(owner) && /node|vitest/.test(cmdlineOf(owner))) continue;
    const root = join(LAB_BASE_DIR, entry);
    const state = readState(root) ?? {
      ownerPid: owner,
      hosts: readdirSync(root)
        .filter((d) => /^[a-z]$/.test(d))
        .map((d) => ({ name: d, root: join(root, d) })),
    };
    cleanupLabSync(root, state);
  }
}

const LAB_TOOLS = ['/usr/sbin/libvirtd', '/usr/bin/virsh', '/usr/bin/qemu-system-x86_64', '/usr/bin/qemu-img', '/usr/bin/unshare', '/usr/bin/nsenter', '/usr/bin/setpriv', '/usr/bin/busybox', '/usr/bin/gcc', '/usr/bin/genisoimage'];

/**
 * What this machine lacks to run a lab (root, libvirtd, QEMU, the namespace
 * tools); empty when it can. FERRY_LAB=0 counts as missing: a skip, or a
 * failure under CI=true (test/lab/requires.ts).
 */
export function labMissing(): string[] {
  const missing: string[] = [];
  if (process.env.FERRY_LAB === '0') missing.push('the lab (FERRY_LAB=0)');
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) missing.push('root');
  for (const p of LAB_TOOLS) if (!existsSync(p)) missing.push(p);
  return missing;
}

// ---------------------------------------------------------------- config

function libvirtdConf(addr: string, hostUuid: string, logLevel: number): string {
  return `# generated by ferry test lab
listen_tls = 0
listen_tcp = 1
listen_addr = "${addr}"
tcp_port = "16509"
auth_tcp = "none"
auth_unix_ro = "none"
auth_unix_rw = "none"
host_uuid = "${hostUuid}"
log_outputs = "${logLevel}:file:/var/log/libvirt/libvirtd.log"
`;
}

/**
 * QEMU listens for incoming migrations on the migration address only, while
 * the host's own idea of its name (migration_host, what libvirt offers when
 * the source names no migrate_uri) stays the management address: only a
 * source that sends the streams to live_migration_inbound_addr reaches it.
 */
function qemuConf(addr: string, migrationAddr: string, index: number, tlsDir: string | null): string {
  const mig = 49152 + index * 64;
  const disp = 5900 + index * 100;
  const ws = 5700 + index * 20;
  return `# generated by ferry test lab
security_driver = "none"
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
migration_address = "${migrationAddr}"
migration_host = "${addr}"
migration_port_min = ${mig}
migration_port_max = ${mig + 63}
vnc_listen = "${addr}"
spice_listen = "${addr}"
remote_display_port_min = ${disp}
remote_display_port_max = ${disp + 99}
remote_websocket_port_min = ${ws}
remote_websocket_port_max = ${ws + 19}
${tlsDir ? `migrate_tls_x509_cert_dir = "${tlsDir}"\nmigrate_tls_x509_verify = 1\n` : ''}`;
}

/**
 * The files QEMU's migration TLS reads from migrate_tls_x509_cert_dir:
 * ca-cert.pem, server-cert.pem/-key.pem (the incoming side, its migration
 * address as subjectAltName: the source checks the host it dialled) and
 * client-cert.pem/-key.pem (the outgoing side, checked by the destination).
 */
export function writeTlsDir(dir: string, ca: CertFiles, hostName: string, migrationAddr: string): void {
  mkdirSync(dir, { recursive: true });
  cpSync(ca.cert, join(dir, 'ca-cert.pem'));
  const server = makeLeaf(dir, ca, 'server', `ferry-lab-${hostName}`, `extendedKeyUsage=serverAuth\nsubjectAltName=IP:${migrationAddr}`);
  const client = makeLeaf(dir, ca, 'client', `ferry-lab-${hostName} client`, 'extendedKeyUsage=clientAuth');
  renameSync(server.cert, join(dir, 'server-cert.pem'));
  renameSync(server.key, join(dir, 'server-key.pem'));
  renameSync(client.cert, join(dir, 'client-cert.pem'));
  renameSync(client.key, join(dir, 'client-key.pem'));
}

// ---------------------------------------------------------------- start

export async function startLab(opts: StartLabOptions): Promise<Lab> {
  const name = (opts.name ?? 'lab').replace(/[^A-Za-z0-9_-]/g, '');
  const addrBase = opts.addrBase ?? 10;
  const migrationAddrBase = opts.migrationAddrBase ?? addrBase;
  const logLevel = opts.logLevel ?? 3;
  if (opts.hosts < 1 || opts.hosts > HOST_NAMES.length) throw new Error(`bad host count ${opts.hosts}`);
  cleanStaleLabs(name);
  installExitHooks();

  const root = join(LAB_BASE_DIR, `${name}-${process.pid}`);
  if (existsSync(root)) cleanupLabSync(root, readState(root));
  const sharedDir = join(root, 'shared');
  mkdirSync(sharedDir, { recursive: true });
  mkdirSync(LAB_INSTANCES_PATH, { recursive: true });
  const state: LabState = { ownerPid: process.pid, hosts: [] };
  activeLabs.set(root, state);
  writeState(root, state);

  const hosts: LabHost[] = [];
  try {
    const caDir = join(root, 'ca');
    if (opts.tls) mkdirSync(caDir, { recursive: true });
    const ca = opts.tls ? makeCa(caDir, 'ca', `ferry lab ${name} CA`) : null;
    // Sequential spawn keeps the 2-core machine responsive; the waits overlap.
    const started: Promise<LabHost>[] = [];
    for (let i = 1; i <= opts.hosts; i++) {
      const hs: HostState = { name: HOST_NAMES[i - 1]!, root: join(root, HOST_NAMES[i - 1]!) };
      state.hosts.push(hs);
      const migrationAddr = `127.0.0.${migrationAddrBase + i}`;
      let tlsDir: string | null = null;
      if (ca) {
        tlsDir = join(hs.root, 'pki');
        writeTlsDir(tlsDir, ca, hs.name, migrationAddr);
      }
      if (opts.bridges) {
        // IFNAMSIZ: 15 characters; the owner's pid makes it the lab's own, for the stale-lab clean-up.
        hs.bridge = `flb${process.pid}${hs.name}`;
        writeState(root, state);
        checkedSync('ip', ['link', 'add', 'name', hs.bridge, 'type', 'bridge']);
        // No addresses, no IPv6 router solicitations: nothing leaves it.
        checkedSync('sysctl', ['-q', '-w', `net.ipv6.conf.${hs.bridge}.disable_ipv6=1`]);
        checkedSync('ip', ['link', 'set', hs.bridge, 'up']);
      }
      started.push(startHost(root, state, hs, i, { addr: `127.0.0.${addrBase + i}`, migrationAddr, tlsDir }, logLevel, opts.startTimeoutMs ?? 60_000));
    }
    const results = await Promise.allSettled(started);
    for (const r of results) {
      if (r.status === 'rejected') throw r.reason;
      hosts.push(r.value);
    }
  } catch (e) {
    cleanupLabSync(root, state);
    activeLabs.delete(root);
    throw e;
  }

  let stopped: Promise<void> | undefined;
  return {
    name,
    root,
    hosts,
    sharedDir,
    stop() {
      stopped ??= (async () => {
        // Best effort: let each libvirtd destroy its domains, then kill everything left.
        await Promise.all(
          hosts.map(async (h) => {
            const list = await h.virsh(['list', '--uuid'], { check: false, timeoutMs: 10_000 }).catch(() => undefined);
            for (const uuid of list?.stdout.split('\n').map((s) => s.trim()).filter(Boolean) ?? []) {
              await h.virsh(['destroy', uuid], { check: false, timeoutMs: 10_000 }).catch(() => undefined);
            }
          }),
        );
        cleanupLabSync(root, state);
        activeLabs.delete(root);
        // Reap the libvirtd children (no zombies left once stop() resolves).
        await Promise.race([
          Promise.all(hosts.map((h) => childExits.get(h.libvirtdPid))),
          sleep(5_000),
        ]);
        for (const h of hosts) childExits.delete(h.libvirtdPid);
      })();
      return stopped;
    },
  };
}

async function startHost(
  labRoot: string,
  state: LabState,
  hs: HostState,
  index: number,
  addrs: { addr: string; migrationAddr: string; tlsDir: string | null },
  logLevel: number,
  timeoutMs: number,
): Promise<LabHost> {
  const root = hs.root;
  const { addr, migrationAddr, tlsDir } = addrs;
  for (const [, sub] of PRIVATE_DIRS) mkdirSync(join(root, sub), { recursive: true });
  // Defaults for /etc/libvirt, minus the autostarted default network (no dnsmasq here).
  cpSync('/etc/libvirt', join(root, 'etc'), { recursive: true });
  rmSync(join(root, 'etc', 'qemu', 'networks', 'autostart'), { recursive: true, force: true });
  mkdirSync(join(root, 'etc', 'qemu', 'networks', 'autostart'), { recursive: true });
  const hostUuid = randomUUID();
  writeFileSync(join(root, 'etc', 'libvirtd.conf'), libvirtdConf(migrationAddr, hostUuid, logLevel));
  writeFileSync(join(root, 'etc', 'qemu.conf'), qemuConf(addr, migrationAddr, index, tlsDir));
  seedCapsCache(join(root, 'cache'));

  const hostname = `ferry-lab-${hs.name}`;
  const uri = `qemu+tcp://${migrationAddr}/system`;
  /** Spawns the host's libvirtd in fresh namespaces over the host's folders; resolves once it answers. */
  const launch = async (): Promise<number> => {
    if (await portInUse(migrationAddr, 16509)) {
      throw new Error(`${migrationAddr}:16509 is already served (another lab?); pass another addrBase or name`);
    }
    const pidFile = join(root, 'libvirtd.pid');
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const script = [
      'set -e',
      `hostname ${q(hostname)}`,
      ...PRIVATE_DIRS.map(([inside, sub]) => `mkdir -p ${q(inside)} && mount --bind ${q(join(root, sub))} ${q(inside)}`),
      `exec /usr/sbin/libvirtd --listen --pid-file ${q(pidFile)}`,
    ].join('\n');
    const outFd = openSync(join(root, 'libvirtd.out'), 'a');
    // setpriv: libvirtd gets SIGTERM if the test process dies without cleaning up.
    // taskset: libvirtd starts on CPU 0 so the host CPUID data it records (leaf
    // 0x1f carries the APIC id of the CPU it ran on) matches the seeded QEMU
    // capabilities cache and it does not re-probe QEMU (~6 s); it is unpinned
    // once it answers. unshare without --fork execs, so the child's pid is libvirtd's pid.
    const child = spawn(
      'setpriv',
      ['--pdeathsig', 'TERM', '--', 'taskset', '-c', '0', 'unshare', '--mount', '--uts', '--propagation', 'private', '--', '/bin/sh', '-c', script],
      { stdio: ['ignore', outFd, outFd], detached: false },
    );
    closeSync(outFd);
    const pid = child.pid;
    if (pid === undefined) throw new Error(`cannot spawn libvirtd for host ${hs.name}`);
    hs.libvirtdPid = pid;
    writeState(labRoot, state);
    let exited: string | undefined;
    const exitedP = new Promise<void>((resolve) =>
      child.on('exit', (code, sig) => {
        exited = `libvirtd for host ${hs.name} exited (${code ?? sig})`;
        resolve();
      }),
    );
    childExits.set(pid, exitedP);
    child.unref();

    await waitFor(
      `libvirtd ${hs.name} at ${uri}`,
      async () => {
        if (exited) {
          const out = readFileSafe(join(root, 'libvirtd.out'));
          throw new Error(`${exited}: ${out.slice(-2000)}`);
        }
        // The host UUID proves the answer comes from this libvirtd, not another lab's on the same address.
        const r = await run('virsh', ['-c', uri, 'capabilities'], { check: false, timeoutMs: 10_000 });
        if (r.code !== 0) return false;
        const seen = /<host>\s*<uuid>([^<]+)<\/uuid>/.exec(r.stdout)?.[1];
        if (seen !== hostUuid) {
          throw new Error(`${migrationAddr}:16509 is served by another libvirtd (host UUID ${seen}); use another addrBase`);
        }
        return true;
      },
      { timeoutMs, intervalMs: 200 },
    ).catch((e: unknown) => {
      if (exited) throw new Error(`${exited}: ${readFileSafe(join(root, 'libvirtd.out')).slice(-2000)}`);
      throw e;
    });
    hs.mntNs = readProc(pid, 'ns/mnt');
    writeState(labRoot, state);
    await run('taskset', ['-a', '-p', '-c', await ownCpuList(), String(pid)], { check: false });

    return pid;
  };
  let pid = await launch();
  const nsArgs = () => [`--mount=/proc/${pid}/ns/mnt`, `--uts=/proc/${pid}/ns/uts`, '--'];

  const host: LabHost = {
    name: hs.name,
    index,
    addr,
    migrationAddr,
    uri,
    tlsDir,
    bridge: hs.bridge ?? null,
    hostname,
    root,
    instancesPath: LAB_INSTANCES_PATH,
    hostInstancesDir: join(root, 'instances'),
    logFile: join(root, 'log', 'libvirtd.log'),
    get libvirtdPid() {
      return pid;
    },
    async restartLibvirtd() {
      if (isAlive(pid)) throw new Error(`libvirtd of host ${hs.name} (pid ${pid}) is still running`);
      pid = await launch();
    },
    exec: (cmd, o) => run('nsenter', [...nsArgs(), ...cmd], o),
    spawnIn: (cmd, args, o) => spawn('nsenter', [...nsArgs(), cmd, ...args], o ?? {}),
    virsh: (args, o) => run('virsh', ['-c', uri, ...args], o),
    qemuPids: () => hostPids({ ...hs, libvirtdPid: 0 }).filter((p) => /qemu/.test(cmdlineOf(p))),
  };
  return host;
}

function portInUse(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port });
    sock.setTimeout(2_000);
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('timeout', () => {
      sock.destroy();
      resolve(false);
    });
    sock.once('error', () => resolve(false));
  });
}

let cpuList: Promise<string> | undefined;
/** This process's CPU affinity list, e.g. "0,1" (what libvirtd gets back after start). */
function ownCpuList(): Promise<string> {
  cpuList ??= run('taskset', ['-c', '-p', String(process.pid)], { check: false }).then(
    (r) => /list:\s*(\S+)/.exec(r.stdout)?.[1] ?? '0',
  );
  return cpuList;
}

function readFileSafe(p: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

// libvirtd probes every QEMU binary on a fresh cache (several seconds each on
// 2 cores). Keep one warm copy of the capabilities cache and seed hosts with it;
// libvirt revalidates the entries (binary ctime, libvirt version) itself.
const CAPS_SEED = join(process.env.FERRY_LAB_CACHE ?? '/var/cache/ferry-lab', 'qemu-capabilities');

function seedCapsCache(cacheDir: string): void {
  if (!existsSync(CAPS_SEED)) return;
  try {
    cpSync(CAPS_SEED, join(cacheDir, 'qemu', 'capabilities'), { recursive: true });
  } catch {
    /* a cold cache only costs time */
  }
}

function saveCapsCache(cacheDir: string): void {
  const src = join(cacheDir, 'qemu', 'capabilities');
  if (!existsSync(src)) return;
  try {
    mkdirSync(CAPS_SEED, { recursive: true });
    for (const f of readdirSync(src)) {
      if (!f.endsWith('.xml')) continue;
      const seeded = join(CAPS_SEED, f);
      const data = readFileSync(join(src, f));
      if (existsSync(seeded) && readFileSync(seeded).equals(data)) continue;
      const tmp = `${seeded}.tmp-${process.pid}`;
      writeFileSync(tmp, data, { mode: 0o600 });
      renameSync(tmp, seeded);
    }
  } catch {
    /* ignore: a cold cache only costs time */
  }
}

export { sleep };
