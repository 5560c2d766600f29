/**
 * Helpers for the interop suite: a development PKI on disk, external peers (openssl, curl,
 * NSS tstclnt, dcctl) run as real processes on loopback, and our own server in this process.
 *
 * Every process started here is tracked and killed (by its pid) when the test file ends, also
 * when a test fails half-way.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { asIssuer, issueCertificate, type IssuedCertificate } from '../../src/cli/pki/dev-pki.js';
import { createServer, type CreateServerOptions, type TLSServer, type TLSSocket } from '../../src/tls/socket.js';
import { cipherSuiteName, namedGroupName } from '../../src/tls/constants.js';
import type { KeylessPki } from '../unit/keyless/pki.js';

const here = dirname(fileURLToPath(import.meta.url));
export const DCCTL = join(here, '../../src/cli/dcctl.js');

export interface Pki {
  readonly dir: string;
  readonly caCrt: string;
  readonly caPem: string;
  /** The CA with its key, to issue more certificates (asIssuer). */
  readonly ca: IssuedCertificate;
  /** Server leaf: DNS localhost, IP 127.0.0.1, DelegationUsage, ECDSA P-256. */
  readonly serverCrt: string;
  readonly serverKey: string;
  readonly serverPem: string;
  readonly serverKeyPem: string;
  /** Client leaf (clientAuth), CN interop-client. */
  readonly clientCrt: string;
  readonly clientKey: string;
  readonly clientPem: string;
  readonly clientKeyPem: string;
  cleanup(): void;
}

function writeIssued(dir: string, name: string, c: IssuedCertificate): { crt: string; key: string } {
  const crt = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  writeFileSync(crt, c.pem);
  writeFileSync(key, c.key.privateKeyPem, { mode: 0o600 });
  return { crt, key };
}

/** A CA, a server certificate and a client certificate, written to a fresh temporary directory. */
export async function makePki(): Promise<Pki> {
  const dir = mkdtempSync(join(tmpdir(), 'interop-'));
  const now = Date.now();
  const ca = await issueCertificate({ commonName: 'interop test CA', isCA: true, notBefore: new Date(now - 3600_000), notAfter: new Date(now + 30 * 86400_000) }, 'ecdsa-p256');
  const server = await issueCertificate(
    {
      commonName: 'localhost',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
      extendedKeyUsage: ['serverAuth'],
      delegationUsage: 'non-critical',
      notBefore: new Date(now - 3600_000),
      notAfter: new Date(now + 20 * 86400_000),
    },
    'ecdsa-p256',
    asIssuer(ca),
  );
  const client = await issueCertificate(
    { commonName: 'interop-client', extendedKeyUsage: ['clientAuth'], notBefore: new Date(now - 3600_000), notAfter: new Date(now + 20 * 86400_000) },
    'ecdsa-p256',
    asIssuer(ca),
  );
  const caCrt = join(dir, 'ca.crt');
  writeFileSync(caCrt, ca.pem);
  const s = writeIssued(dir, 'server', server);
  const c = writeIssued(dir, 'client', client);
  return {
    dir,
    caCrt,
    caPem: ca.pem,
    ca,
    serverCrt: s.crt,
    serverKey: s.key,
    serverPem: server.pem,
    serverKeyPem: server.key.privateKeyPem,
    clientCrt: c.crt,
    clientKey: c.key,
    clientPem: client.pem,
    clientKeyPem: client.key.privateKeyPem,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

// --- processes ------------------------------------------------------------------------------------

const started = new Set<ChildProcess>();

/** Kills every process still running that this file started (by pid). */
export function killAll(): void {
  for (const child of started) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  started.clear();
}

export interface Proc {
  readonly child: ChildProcess;
  /** stdout and stderr as read so far (latin1). */
  output(): string;
  stdout(): string;
  /** Resolves with the first match of `re` in the output; rejects on exit or timeout. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Resolves once stdout holds at least `n` characters; rejects on exit or timeout. */
  waitForStdout(n: number, timeoutMs?: number): Promise<string>;
  write(data: string | Buffer): void;
  endInput(): void;
  /** Resolves with the exit code (or 128+signal). */
  exited: Promise<number>;
  stop(): Promise<number>;
}

export function start(cmd: string, args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Proc {
  const child = spawn(cmd, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  started.add(child);
  let out = '';
  let stdout = '';
  const waiters = new Set<() => void>();
  const notify = (): void => {
    for (const w of [...waiters]) w();
  };
  child.stdout.setEncoding('latin1').on('data', (d: string) => {
    out += d;
    stdout += d;
    notify();
  });
  child.stderr.setEncoding('latin1').on('data', (d: string) => {
    out += d;
    notify();
  });
  child.stdin.on('error', () => undefined);
  const exited = new Promise<number>((res) => {
    child.on('exit', (code, signal) => {
      started.delete(child);
      res(code ?? 128 + (signal === 'SIGKILL' ? 9 : 15));
    });
    child.on('error', () => res(127));
  });
  let done = false;
  void exited.then(() => {
    done = true;
    notify();
  });
  return {
    child,
    output: () => out,
    stdout: () => stdout,
    waitFor(re, timeoutMs = 15_000) {
      return waitUntil(() => re.exec(out) ?? undefined, `print ${re}`, timeoutMs);
    },
    waitForStdout(n, timeoutMs = 15_000) {
      return waitUntil(() => (stdout.length >= n ? stdout : undefined), `write ${n} characters to stdout (got ${stdout.length})`, timeoutMs);
    },
    write: (data) => void child.stdin.write(data),
    endInput: () => void child.stdin.end(),
    exited,
    stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };

  function waitUntil<T>(probe: () => T | undefined, what: string, timeoutMs: number): Promise<T> {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const m = probe();
          if (m !== undefined) {
            cleanup();
            resolve(m);
          } else if (done) {
            cleanup();
            reject(new Error(`${cmd} exited before it did ${what}; output:\n${out.slice(-3000)}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`${cmd} did not ${what} within ${timeoutMs} ms; output:\n${out.slice(-3000)}`));
        }, timeoutMs);
        const cleanup = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
  }
}

export interface RunResult {
  readonly code: number;
  readonly output: string;
  readonly stdout: string;
}

/** Runs a process to completion with `input` on stdin; kills it after `timeoutMs`. */
export async function run(cmd: string, args: readonly string[], options: { input?: string | Buffer; timeoutMs?: number; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  const p = start(cmd, args, options);
  if (options.input !== undefined) p.write(options.input);
  p.endInput();
  const timer = setTimeout(() => p.child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
  const code = await p.exited;
  clearTimeout(timer);
  return { code, output: p.output(), stdout: p.stdout() };
}

/**
 * The Go program `test/interop/go/<name>` (standard library only), built with the machine's Go
 * on first use and cached under ~/.cache/dc-operator/go-interop/, keyed by a hash of its
 * sources, so later runs need no Go build. Resolves with the binary's path.
 */
export async function goProgram(name: string): Promise<string> {
  const source = join(here, '../../../test/interop/go', name);
  const hash = createHash('sha256');
  for (const f of readdirSync(source).filter((f) => f === 'go.mod' || f.endsWith('.go')).sort()) hash.update(f).update(readFileSync(join(source, f)));
  const dir = join(homedir(), '.cache', 'dc-operator', 'go-interop');
  const binary = join(dir, `${name}-${hash.digest('hex').slice(0, 16)}`);
  if (existsSync(binary)) return binary;
  mkdirSync(dir, { recursive: true });
  const tmp = `${binary}.${process.pid}.tmp`;
  const built = await run('go', ['build', '-o', tmp, '.'], { cwd: source, timeoutMs: 600_000, env: { ...process.env, GOFLAGS: '-buildvcs=false', GOTOOLCHAIN: 'local' } });
  if (built.code !== 0) throw new Error(`go build of test/interop/go/${name} failed:\n${built.output}`);
  renameSync(tmp, binary);
  return binary;
}

/** `dc-operator keyserver --keys` (a KeylessPki's key directory) as its own process, resolved with its address once it listens. */
export async function startKeylessKeyServer(k: KeylessPki): Promise<{ proc: Proc; address: string }> {
  const proc = start(process.execPath, [
    join(here, '../../src/cli/dc-operator.js'), 'keyserver', '--keys', k.keysDir, '--ca', join(k.dir, 'ca.crt'),
    '--cert', join(k.dir, 'server.crt'), '--key', join(k.dir, 'server.pem'), '--port', '0', '--address', '127.0.0.1', '--metrics-port', '0',
  ]);
  const m = await proc.waitFor(/\{[^\n]*key server listening[^\n]*\}/);
  const event = JSON.parse(m[0]) as { port: number };
  return { proc, address: `127.0.0.1:${event.port}` };
}

/** `openssl s_server ... -accept 0`, resolved once it listens, with its port. */
export async function startOpensslServer(args: readonly string[]): Promise<{ proc: Proc; port: number }> {
  const proc = start('openssl', ['s_server', '-accept', '0', ...args]);
  const m = await proc.waitFor(/ACCEPT .*:(\d+)/);
  return { proc, port: Number(m[1]) };
}

// --- our server -----------------------------------------------------------------------------------

export interface ServedConnection {
  readonly suite: string;
  readonly group: string;
  readonly alpn: string | undefined;
  readonly resumed: boolean;
  readonly hrr: boolean;
  readonly client: string | undefined;
  readonly authentication: string;
}

/** What the server says about a connection: one line, e.g. "TLS_AES_128_GCM_SHA256 x25519 alpn=- resumed=no hrr=no client=-". */
export function describeConnection(s: TLSSocket): ServedConnection {
  const info = s.handshakeInfo!;
  return {
    suite: cipherSuiteName(info.cipherSuite),
    group: namedGroupName(info.group),
    alpn: info.alpnProtocol,
    resumed: info.resumed,
    hrr: info.helloRetryRequest,
    client: info.clientMode ? (s.peerCertificate?.subject.replace(/^CN=/, '') ?? 'psk') : undefined,
    authentication: info.serverMode.authentication,
  };
}

export function connectionLine(c: ServedConnection): string {
  return `${c.suite} ${c.group} alpn=${c.alpn ?? '-'} resumed=${c.resumed ? 'yes' : 'no'} hrr=${c.hrr ? 'yes' : 'no'} client=${c.client ?? '-'} auth=${c.authentication}`;
}

export interface OurServer {
  readonly server: TLSServer;
  readonly port: number;
  /** Connections in completion order. */
  readonly connections: ServedConnection[];
  readonly clientErrors: Error[];
  close(): Promise<void>;
}

/**
 * Our TLS server in this process. A connection whose first bytes are "GET " gets an HTTP/1.0
 * response whose body is `connectionLine` and is closed; anything else is echoed back, and the
 * server ends its side when the client does.
 */
export async function startOurServer(options: CreateServerOptions): Promise<OurServer> {
  const connections: ServedConnection[] = [];
  const clientErrors: Error[] = [];
  const sockets = new Set<TLSSocket>();
  const server = createServer(options, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    const c = describeConnection(s);
    connections.push(c);
    let first = true;
    s.on('error', () => undefined);
    s.on('data', (chunk: Buffer) => {
      if (first && chunk.subarray(0, 4).toString('latin1') === 'GET ') {
        const body = `${connectionLine(c)}\n`;
        s.end(`HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
        first = false;
        return;
      }
      first = false;
      s.write(chunk);
    });
    s.on('end', () => s.end());
  });
  server.on('tlsClientError', (err: Error) => clientErrors.push(err));
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    connections,
    clientErrors,
    close: () =>
      new Promise<void>((res) => {
        for (const s of sockets) s.destroy();
        server.close(() => res());
      }),
  };
}

// --- the matrix ------------------------------------------------------------------------------------

export const SUITES = [
  { name: 'TLS_AES_128_GCM_SHA256', id: 0x1301, curl: 'TLS_AES_128_GCM_SHA256', node: 'TLS_AES_128_GCM_SHA256' },
  { name: 'TLS_AES_256_GCM_SHA384', id: 0x1302, curl: 'TLS_AES_256_GCM_SHA384', node: 'TLS_AES_256_GCM_SHA384' },
  { name: 'TLS_CHACHA20_POLY1305_SHA256', id: 0x1303, curl: 'TLS_CHACHA20_POLY1305_SHA256', node: 'TLS_CHACHA20_POLY1305_SHA256' },
] as const;

export const GROUPS = [
  /** `openssl` is the name for -groups / -curves and node's ecdhCurve; `temp` how s_client reports it. */
  { name: 'x25519', id: 0x001d, openssl: 'X25519', temp: /Server Temp Key: X25519/ },
  { name: 'secp256r1', id: 0x0017, openssl: 'P-256', temp: /Server Temp Key: ECDH, (P-256|prime256v1)/ },
  { name: 'secp384r1', id: 0x0018, openssl: 'P-384', temp: /Server Temp Key: ECDH, (P-384|secp384r1)/ },
] as const;

export function httpGet(host = 'localhost'): string {
  return `GET / HTTP/1.0\r\nHost: ${host}\r\n\r\n`;
}

/** NSS tstclnt -B (DC support on), TLS 1.3, to 127.0.0.1:port as localhost, trusting the CAs in nssDb. */
export function tstclntHandshake(port: number, nssDb: string): Promise<RunResult> {
  return run('tstclnt', ['-B', '-h', '127.0.0.1', '-p', String(port), '-d', nssDb, '-V', 'tls1.3:tls1.3', '-a', 'localhost', '-Q'], { input: '', timeoutMs: 10_000 });
}

/** The sum of the Prometheus samples at http://127.0.0.1:metricsPort/metrics whose line matches `line`. */
export async function metricSum(metricsPort: number, line: RegExp): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  let sum = 0;
  for (const l of text.split('\n')) if (line.test(l)) sum += Number(l.split(' ').pop());
  return sum;
}

/** node:tls as a client without DC support: TLS 1.3 to 127.0.0.1 as localhost, an HTTP GET, the whole answer. */
export function nodeTlsGet(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca, minVersion: 'TLSv1.3' }, () => s.write(httpGet()));
    let out = '';
    s.setEncoding('utf8').on('data', (d: string) => (out += d));
    s.on('end', () => resolve(out));
    s.on('error', reject);
    s.setTimeout(10_000, () => s.destroy(new Error('node:tls client timed out')));
  });
}
