// A local Kubernetes control plane (etcd + kube-apiserver) on loopback, as controller-runtime's
// envtest runs it. Shared by `make control-plane-up` (through control-plane-cli.ts) and the test
// harness (scripts/run-tests.mjs and cluster.ts), so the flag list lives only here.
//
// Everything it creates lives in one state directory: the PKI (a CA, the apiserver's serving
// certificate, an admin client certificate in O=system:masters, the service-account signing key),
// etcd's data, and state.json recording the PIDs. Processes are started in their own process
// groups; when `dieWithParent` is set they also get a parent-death signal (util-linux setpriv), so
// even a SIGKILLed test runner leaves no orphans.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

/** The repository root, found from this file's place in dist/test/support/ or test/support/. */
export const repoRoot: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'scripts', 'control-plane', 'versions.env'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('cannot find the repository root (scripts/control-plane/versions.env) above ' + fileURLToPath(import.meta.url));
})();

export interface PinnedVersions {
  kubernetes: string;
  etcd: string;
  helm: string;
}

/** The versions pinned in scripts/control-plane/versions.env. */
export function pinnedVersions(): PinnedVersions {
  const text = readFileSync(join(repoRoot, 'scripts', 'control-plane', 'versions.env'), 'utf8');
  const env = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(\S+)\s*$/.exec(line);
    if (m?.[1] && m[2]) env.set(m[1], m[2]);
  }
  const get = (k: string): string => {
    const v = env.get(k);
    if (!v) throw new Error(`versions.env has no ${k}`);
    return v;
  };
  return { kubernetes: get('K8S_VERSION'), etcd: get('ETCD_VERSION'), helm: get('HELM_VERSION') };
}

/**
 * The directory holding kube-apiserver, etcd and helm: $DC_K8S_BIN_DIR when set, otherwise what
 * scripts/control-plane/ensure.sh finds or builds (it prints progress on stderr).
 */
export function ensureBinaries(): string {
  const fromEnv = process.env['DC_K8S_BIN_DIR'];
  if (fromEnv) return fromEnv;
  const out = execFileSync('bash', [join(repoRoot, 'scripts', 'control-plane', 'ensure.sh'), '--print-dir'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  });
  const dir = out.trim().split('\n').pop();
  if (!dir) throw new Error('ensure.sh printed no directory');
  return dir;
}

/** The helm binary (pinned version, Kubernetes minor of the pinned apiserver). */
export function helmPath(): string {
  return join(ensureBinaries(), 'helm');
}

/** Where kubectl is: on PATH, or next to the other binaries when ensure.sh had to build it. */
export function kubectlPath(binDir: string): string {
  const local = join(binDir, 'kubectl');
  if (existsSync(local)) return local;
  return 'kubectl';
}

export interface ControlPlaneOptions {
  /** Directory holding kube-apiserver and etcd. */
  binDir: string;
  /** Directory for PKI, etcd data and state.json; created, and removed by stopControlPlane. */
  stateDir: string;
  /** Directory for etcd.log and kube-apiserver.log (kept after stop, for post-mortems). */
  logDir: string;
  /** Where to write the admin kubeconfig (default: <stateDir>/kubeconfig). */
  kubeconfigPath?: string;
  /** Kill the processes when the calling process dies, however it dies (test runs). */
  dieWithParent?: boolean;
  /** How long to wait for /readyz (default 90 s). */
  readyTimeoutMs?: number;
  /** Progress messages (default: none). */
  log?: (msg: string) => void;
}

export interface ControlPlaneState {
  stateDir: string;
  logDir: string;
  kubeconfigPath: string;
  /** https://127.0.0.1:<port> */
  server: string;
  etcdUrl: string;
  /** PID of the process that started it (run-tests.mjs, the CLI, or a test file). */
  ownerPid: number;
  etcd: { pid: number; bin: string };
  apiserver: { pid: number; bin: string };
  startedAt: string;
  /** Milliseconds from spawning etcd to /readyz answering ok. */
  readyAfterMs: number;
}

interface Pki {
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  adminCert: string;
  adminKey: string;
  saKey: string;
  saPub: string;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A throwaway PKI made with openssl: EC P-256 keys, one CA signing everything. */
function makePki(dir: string): Pki {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const p = (f: string): string => join(dir, f);
  const ecKey = (f: string): void => openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f], dir);
  ecKey('ca.key');
  openssl(['req', '-x509', '-new', '-key', 'ca.key', '-subj', '/CN=dc-operator-local-ca', '-days', '30', '-out', 'ca.crt',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  const leaf = (name: string, subj: string, ext: string): void => {
    ecKey(`${name}.key`);
    openssl(['req', '-new', '-key', `${name}.key`, '-subj', subj, '-out', `${name}.csr`], dir);
    writeFileSync(p(`${name}.ext`), ext);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '30',
      '-extfile', `${name}.ext`, '-out', `${name}.crt`], dir);
  };
  leaf('apiserver', '/CN=kube-apiserver',
    'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' +
    'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,' +
    'DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n');
  leaf('admin', '/O=system:masters/CN=dc-admin',
    'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
  ecKey('sa.key');
  openssl(['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
  return {
    caCert: p('ca.crt'), caKey: p('ca.key'), serverCert: p('apiserver.crt'), serverKey: p('apiserver.key'),
    adminCert: p('admin.crt'), adminKey: p('admin.key'), saKey: p('sa.key'), saPub: p('sa.pub'),
  };
}

/** A port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => (port ? res(port) : rej(new Error('no port'))));
    });
  });
}

function etcdArgs(dataDir: string, clientPort: number, peerPort: number): string[] {
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  return [
    '--name=dc-etcd',
    `--data-dir=${dataDir}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=dc-etcd=${peer}`,
    '--initial-cluster-state=new',
    // Throwaway data: skip fsync as envtest does; it makes writes an order of magnitude faster.
    '--unsafe-no-fsync=true',
    '--log-level=warn',
  ];
}

function apiserverArgs(pki: Pki, etcdUrl: string, securePort: number, certDir: string): string[] {
  return [
    `--etcd-servers=${etcdUrl}`,
    '--advertise-address=127.0.0.1',
    '--bind-address=127.0.0.1',
    `--secure-port=${securePort}`,
    `--cert-dir=${certDir}`,
    `--tls-cert-file=${pki.serverCert}`,
    `--tls-private-key-file=${pki.serverKey}`,
    `--client-ca-file=${pki.caCert}`,
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${pki.saPub}`,
    `--service-account-signing-key-file=${pki.saKey}`,
    '--service-cluster-ip-range=10.0.0.0/24',
    '--authorization-mode=RBAC',
    // OpenShift's default, added to the upstream defaults: the controller sets blockOwnerDeletion
    // on output Secrets, which it allows only with update on delegatedcredentials/finalizers; the
    // RBAC tests (which run the controller with exactly its rules) then prove that rule is there.
    '--enable-admission-plugins=OwnerReferencesPermissionEnforcement',
    '--allow-privileged=true',
    '--profiling=false',
    '--v=1',
  ];
}

function kubeconfigYaml(server: string, pki: Pki): string {
  const b64 = (f: string): string => readFileSync(f).toString('base64');
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- name: dc-local',
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority-data: ${b64(pki.caCert)}`,
    'users:',
    '- name: dc-admin',
    '  user:',
    `    client-certificate-data: ${b64(pki.adminCert)}`,
    `    client-key-data: ${b64(pki.adminKey)}`,
    'contexts:',
    '- name: dc-local',
    '  context:',
    '    cluster: dc-local',
    '    user: dc-admin',
    'current-context: dc-local',
    '',
  ].join('\n');
}

interface Started {
  pid: number;
  exited: () => string | undefined;
}

function startProcess(bin: string, args: string[], logFile: string, dieWithParent: boolean): Started {
  const out = openSync(logFile, 'a');
  const [cmd, argv] = dieWithParent && hasSetprivPdeathsig()
    ? ['setpriv', ['--pdeathsig', 'KILL', '--', bin, ...args]]
    : [bin, args];
  // detached: its own process group, so a terminal's Ctrl-C reaches us first and we stop it in order.
  const child = spawn(cmd, argv, { detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  let exit: string | undefined;
  child.on('exit', (code, signal) => { exit = signal ? `signal ${signal}` : `exit code ${code}`; });
  child.on('error', (err) => { exit = `spawn error: ${err.message}`; });
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start ${bin}`);
  return { pid: child.pid, exited: () => exit };
}

let setprivChecked: boolean | undefined;
function hasSetprivPdeathsig(): boolean {
  if (setprivChecked === undefined) {
    try {
      setprivChecked = execFileSync('setpriv', ['--help'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).includes('--pdeathsig');
    } catch {
      setprivChecked = false;
    }
  }
  return setprivChecked;
}

/** GET https://127.0.0.1:<port><path> with the admin client certificate; resolves status + body. */
function adminGet(server: string, path: string, pki: Pki, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  const url = new URL(path, server);
  return new Promise((res, rej) => {
    const req = request(
      {
        host: url.hostname, port: url.port, path: url.pathname + url.search, method: 'GET',
        ca: readFileSync(pki.caCert), cert: readFileSync(pki.adminCert), key: readFileSync(pki.adminKey),
        timeout: timeoutMs,
      },
      (resp) => {
        let body = '';
        resp.setEncoding('utf8');
        resp.on('data', (c: string) => { body += c; });
        resp.on('end', () => res({ status: resp.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', rej);
    req.end();
  });
}

function tail(file: string, lines = 25): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** True when pid is alive and runs the given binary (guards against recycled PIDs). */
function runs(pid: number, bin: string): boolean {
  if (!isAlive(pid)) return false;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes(bin);
  } catch {
    return true; // no /proc: trust the PID
  }
}

function signalGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    try { process.kill(pid, sig); } catch { /* already gone */ }
  }
}

const STATE_FILE = 'state.json';

export function readState(stateDir: string): ControlPlaneState | undefined {
  try {
    return JSON.parse(readFileSync(join(stateDir, STATE_FILE), 'utf8')) as ControlPlaneState;
  } catch {
    return undefined;
  }
}

/**
 * Starts etcd and kube-apiserver, waits for /readyz, writes the kubeconfig and state.json.
 * Retries with fresh ports if a port was taken between choosing and binding it.
 */
export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlaneState> {
  const log = opts.log ?? ((): void => {});
  const stateDir = resolve(opts.stateDir);
  const logDir = resolve(opts.logDir);
  const stale = readState(stateDir);
  if (stale) {
    if (runs(stale.apiserver.pid, stale.apiserver.bin) || runs(stale.etcd.pid, stale.etcd.bin)) {
      throw new Error(`a control plane is already running from ${stateDir} (${stale.server}); stop it first`);
    }
  }
  rmSync(stateDir, { recursive: true, force: true });
  mkdirSync(stateDir, { recursive: true });
  mkdirSync(logDir, { recursive: true });
  const t0 = Date.now();
  const pki = makePki(join(stateDir, 'pki'));
  const kubeApiserver = join(opts.binDir, 'kube-apiserver');
  const etcdBin = join(opts.binDir, 'etcd');
  const etcdLog = join(logDir, 'etcd.log');
  const apiLog = join(logDir, 'kube-apiserver.log');
  writeFileSync(etcdLog, '');
  writeFileSync(apiLog, '');
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 90_000);

  for (let attempt = 1; ; attempt++) {
    const [clientPort, peerPort, securePort] = [await freePort(), await freePort(), await freePort()];
    const etcdUrl = `http://127.0.0.1:${clientPort}`;
    const server = `https://127.0.0.1:${securePort}`;
    const dataDir = join(stateDir, 'etcd');
    rmSync(dataDir, { recursive: true, force: true });
    log(`starting etcd on ${etcdUrl}`);
    const etcd = startProcess(etcdBin, etcdArgs(dataDir, clientPort, peerPort), etcdLog, opts.dieWithParent ?? false);
    log(`starting kube-apiserver on ${server}`);
    const api = startProcess(kubeApiserver, apiserverArgs(pki, etcdUrl, securePort, join(stateDir, 'pki')), apiLog, opts.dieWithParent ?? false);
    const kubeconfigPath = resolve(opts.kubeconfigPath ?? join(stateDir, 'kubeconfig'));
    const state: ControlPlaneState = {
      stateDir, logDir, kubeconfigPath, server, etcdUrl, ownerPid: process.pid,
      etcd: { pid: etcd.pid, bin: etcdBin }, apiserver: { pid: api.pid, bin: kubeApiserver },
      startedAt: new Date().toISOString(), readyAfterMs: 0,
    };
    writeFileSync(join(stateDir, STATE_FILE), JSON.stringify(state, null, 2) + '\n');

    let failure: string | undefined;
    for (;;) {
      const dead = etcd.exited() ? `etcd ended (${etcd.exited()})` : api.exited() ? `kube-apiserver ended (${api.exited()})` : undefined;
      if (dead) { failure = dead; break; }
      if (Date.now() > deadline) { failure = 'timed out waiting for /readyz'; break; }
      try {
        const r = await adminGet(server, '/readyz', pki);
        if (r.status === 200) break;
      } catch { /* not listening yet */ }
      await sleep(250);
    }
    if (!failure) {
      state.readyAfterMs = Date.now() - t0;
      mkdirSync(dirname(kubeconfigPath), { recursive: true });
      writeFileSync(kubeconfigPath, kubeconfigYaml(server, pki), { mode: 0o600 });
      writeFileSync(join(stateDir, STATE_FILE), JSON.stringify(state, null, 2) + '\n');
      log(`ready after ${state.readyAfterMs} ms; kubeconfig ${kubeconfigPath}`);
      return state;
    }
    await killProcesses(state);
    const bindRace = /address already in use/.test(tail(etcdLog, 50) + tail(apiLog, 50));
    if (bindRace && attempt < 3 && Date.now() < deadline) {
      log(`port taken (${failure}); retrying with new ports`);
      continue;
    }
    rmSync(stateDir, { recursive: true, force: true });
    throw new Error(`control plane did not become ready: ${failure}\n` +
      `--- ${etcdLog} (tail)\n${tail(etcdLog)}\n--- ${apiLog} (tail)\n${tail(apiLog)}`);
  }
}

/** SIGTERM both process groups (apiserver first), wait up to graceMs, then SIGKILL. */
async function killProcesses(state: ControlPlaneState, graceMs = 10_000): Promise<void> {
  const procs = [state.apiserver, state.etcd].filter((p) => runs(p.pid, p.bin));
  for (const p of procs) {
    signalGroup(p.pid, 'SIGTERM');
    const until = Date.now() + graceMs;
    while (isAlive(p.pid) && Date.now() < until) await sleep(100);
    if (isAlive(p.pid)) signalGroup(p.pid, 'SIGKILL');
  }
  const until = Date.now() + 5000;
  while (procs.some((p) => isAlive(p.pid)) && Date.now() < until) await sleep(50);
}

/** Stops the processes of a control plane and removes its state directory (not its logs). */
export async function stopControlPlane(state: ControlPlaneState): Promise<void> {
  await killProcesses(state);
  rmSync(state.stateDir, { recursive: true, force: true });
}

/**
 * Synchronous last-resort stop for process 'exit' handlers: SIGKILL both groups, remove state.
 * (An 'exit' handler cannot wait; the data is throwaway anyway.)
 */
export function killControlPlaneSync(state: ControlPlaneState): void {
  for (const p of [state.apiserver, state.etcd]) {
    if (runs(p.pid, p.bin)) signalGroup(p.pid, 'SIGKILL');
  }
  rmSync(state.stateDir, { recursive: true, force: true });
}

/** True when the state's processes still run. */
export function isRunning(state: ControlPlaneState): boolean {
  return runs(state.apiserver.pid, state.apiserver.bin) && runs(state.etcd.pid, state.etcd.bin);
}

/**
 * Cleans up after test runs that died without stopping their control plane (state directories
 * named test-control-plane-<pid> under devDir whose owner is gone). Returns what it removed.
 */
export async function reapStaleControlPlanes(devDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = readdirSync(devDir).filter((n) => n.startsWith('test-control-plane-'));
  } catch {
    return [];
  }
  const reaped: string[] = [];
  for (const n of names) {
    const dir = join(devDir, n);
    const state = readState(dir);
    const owner = state?.ownerPid ?? Number(n.slice('test-control-plane-'.length));
    if (owner === process.pid || (Number.isInteger(owner) && owner > 0 && isAlive(owner))) continue;
    if (state) await stopControlPlane(state);
    rmSync(dir, { recursive: true, force: true });
    reaped.push(dir);
  }
  return reaped;
}
