import type { AddressInfo, Socket } from 'node:net';
import { createServer, type TLSServer, type TLSSocket } from '../../tls/socket.js';
import {
  DelegationError,
  delegatedCredentialPeerHooks,
  delegatedCredentialSelector,
  loadDelegatedCredentialSet,
  readCredentialDirectory,
  type DelegatedCredentialDetails,
  type DelegatedCredentialSet,
} from '../../tls/delegated/index.js';
import { signatureSchemeName } from '../../tls/constants.js';
import { describeWarmUp, warmUpServer } from '../../tls/warm-up.js';
import { defineCommand } from '../framework/command.js';
import { CommandFailed, InputError } from '../framework/errors.js';
import { resolvePath } from '../framework/files.js';
import { integerFlag, ipFlag } from '../framework/flags.js';
import { readCertificateFile, readMatchingKey } from './tls-inputs.js';

const MAX_REQUEST_HEAD = 16 * 1024;
/** About 15 s of CPU: a bound, not a recommendation. */
const MAX_WARM_UP_HANDSHAKES = 10_000;

/**
 * The start-up warm-up of the sidecar (src/sidecar/warm-up.ts), for this test server: `n`
 * in-memory handshakes against itself, split between clients offering delegated credentials and
 * clients that do not when there are credentials. Synchronous and bounded by `n`; it stops at the
 * first handshake that would wait or fail, and a throw costs the warm-up, never the server.
 */
function warmUp(server: TLSServer, dcs: boolean, n: number, log: (line: string) => void): void {
  if (n === 0) return;
  const cpu = process.cpuUsage();
  const started = performance.now();
  let done = 0;
  const details: string[] = [];
  try {
    const dc = dcs ? Math.ceil(n / 2) : 0;
    if (dc > 0) {
      const r = warmUpServer(server.config, dc, { serverCredentialHooks: delegatedCredentialPeerHooks({ peer: 'server' }) });
      done += r.done;
      details.push(`with delegated credentials: ${describeWarmUp(r)}`);
    }
    const r = warmUpServer(server.config, n - dc);
    done += r.done;
    details.push(`${dc > 0 ? 'without: ' : ''}${describeWarmUp(r)}`);
  } catch (e) {
    log(`warm-up stopped: ${e instanceof Error ? e.message : String(e)}`);
  }
  const used = process.cpuUsage(cpu);
  log(`warm-up: ${done} of ${n} in-memory handshakes (${details.join('; ')}), ${Math.round((used.user + used.system) / 1000)} ms CPU, ${Math.round(performance.now() - started)} ms`);
}

/** The one line `GET /` answers: how this connection's server authenticated. */
export function authenticationLine(socket: TLSSocket): string {
  const mode = socket.handshakeMode?.server;
  if (mode?.authentication === 'delegated-credential') {
    const details = mode.details as DelegatedCredentialDetails | undefined;
    return `delegated-credential ${details?.algorithm ?? signatureSchemeName(mode.signatureScheme ?? 0)}`;
  }
  return mode?.authentication === 'psk' ? 'psk' : 'certificate';
}

function respond(socket: TLSSocket, status: string, body: string): void {
  const head = `HTTP/1.1 ${status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n`;
  socket.end(head + body);
}

/** A minimal HTTP/1.x responder: one request per connection, `GET /` only. */
function serveHttp(socket: TLSSocket, log: (line: string) => void): void {
  let head = '';
  let answered = false;
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => {
    if (answered) return;
    head += chunk;
    const end = head.indexOf('\r\n\r\n') >= 0 ? head.indexOf('\r\n\r\n') : head.indexOf('\n\n');
    if (end < 0) {
      if (head.length > MAX_REQUEST_HEAD) {
        answered = true;
        respond(socket, '431 Request Header Fields Too Large', 'request head too large\n');
      }
      return;
    }
    answered = true;
    const [method, target] = (head.split(/\r?\n/)[0] ?? '').split(' ');
    if (method !== 'GET' && method !== 'HEAD') respond(socket, '405 Method Not Allowed', 'only GET\n');
    else if (target !== '/') respond(socket, '404 Not Found', 'not found\n');
    else {
      const line = authenticationLine(socket);
      log(`GET / -> ${line}`);
      respond(socket, '200 OK', `${line}\n`);
    }
  });
  socket.on('error', () => undefined);
}

export const serve = defineCommand({
  path: ['serve'],
  summary: 'Run an HTTPS test server on our TLS stack (1.3 and 1.2), serving delegated credentials',
  description: `
Listens on HOST:PORT with TLS 1.3 and TLS 1.2 (our stack, not OpenSSL; ECDSA or RSA
certificates; TLS 1.2 with ECDHE, AES-GCM or ChaCha20-Poly1305 and the extended master secret).
'GET /' answers one line saying how the server authenticated on that connection:
'delegated-credential <algorithm>', 'certificate' or 'psk' (resumed). Delegated credentials are
TLS 1.3 only: TLS 1.2 clients get the certificate.

With --dc-dir, the credentials found in each directory (<name>.cred with <name>.key, as written by
'dcctl dc issue') are served to clients that offer the delegated_credential extension (34) with a
matching scheme; other clients get the certificate key. All credentials must belong to --cert.

Before it says it listens it runs --warm-up-handshakes in-memory handshakes against itself (DC and
certificate clients, half each with --dc-dir), so that the first clients do not pay for compiling
the handshake code; this delays 'listening' by a few hundred ms.

Prints 'listening on https://HOST:PORT' once ready (with --port 0 the port is chosen by the
system) and runs until SIGINT or SIGTERM.`,
  exitStatus: {
    0: 'stopped by SIGTERM or SIGINT',
    1: 'could not start (e.g. the port is in use) or failed while running',
  },
  options: {
    cert: { type: 'string', value: 'FILE', description: 'certificate chain (PEM, end-entity first)', required: true },
    key: { type: 'string', value: 'FILE', description: "the certificate's private key (PEM)", required: true },
    'dc-dir': { type: 'string', multiple: true, value: 'DIR', description: 'directory with delegated credentials (<name>.cred + <name>.key) for --cert' },
    port: { type: 'string', value: 'N', description: 'TCP port (0: any free port)', default: '8443' },
    address: { type: 'string', value: 'IP', description: 'address to listen on', default: '127.0.0.1', deprecatedAliases: ['host'] },
    'nss-compat': {
      type: 'boolean',
      description: "serve a credential only if its signature algorithm is also in the client's extension-34 list (NSS/Firefox rule; matters for RSA certificates)",
    },
    quiet: { type: 'boolean', description: 'do not log requests, handshake failures and the warm-up' },
    'warm-up-handshakes': { type: 'string', value: 'N', description: 'in-memory handshakes against itself before listening (0: none)', default: '200' },
  },
  examples: [
    'dcctl serve --cert .dev/api/tls.crt --key .dev/api/tls.key --dc-dir .dev/dc-p256 --port 8443',
    'curl --cacert .dev/ca/ca.crt --resolve api.example.test:8443:127.0.0.1 https://api.example.test:8443/',
  ],
  validate(v) {
    return {
      cert: v.cert,
      key: v.key,
      dcDirs: v['dc-dir'],
      port: integerFlag('--port', v.port, 0, 65535),
      host: ipFlag('--address', v.address),
      nssCompat: v['nss-compat'],
      quiet: v.quiet,
      warmUpHandshakes: integerFlag('--warm-up-handshakes', v['warm-up-handshakes'], 0, MAX_WARM_UP_HANDSHAKES),
    };
  },
  async run(c, ctx) {
    const cert = await readCertificateFile(ctx.cwd, c.cert, '--cert', { endEntityFirst: true });
    const { key } = await readMatchingKey(ctx.cwd, c.key, '--key', cert, `--cert ${c.cert}`);
    let set: DelegatedCredentialSet | undefined;
    if (c.dcDirs.length > 0) {
      try {
        const sources = await Promise.all(c.dcDirs.map((d) => readCredentialDirectory(resolvePath(ctx.cwd, d))));
        set = loadDelegatedCredentialSet(sources, { certificateChain: cert.chain, now: ctx.now() });
      } catch (e) {
        if (e instanceof DelegationError) throw new InputError(`--dc-dir: ${e.message}`);
        throw e;
      }
      if (set.entries.length === 0) throw new InputError(`--dc-dir: no delegated credentials (<name>.cred + <name>.key) in ${c.dcDirs.join(', ')}`);
    }
    const log = (line: string): void => {
      if (!c.quiet) ctx.stderr(`${new Date().toISOString()} ${line}\n`);
    };
    const server: TLSServer = createServer({
      certificates: [{ cert: cert.chain, key }],
      ...(set ? { selectCredential: delegatedCredentialSelector(set, { requireAlgorithmInDcSchemes: c.nssCompat }) } : {}),
      alpnProtocols: ['http/1.1'],
    });
    server.on('secureConnection', (socket: TLSSocket) => serveHttp(socket, log));
    server.on('tlsClientError', (err: Error) => log(`handshake failed: ${err.message}`));
    server.on('error', () => undefined);
    const open = new Set<Socket>();
    server.on('connection', (raw: Socket) => {
      open.add(raw);
      raw.once('close', () => open.delete(raw));
    });

    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(c.port, c.host, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((e: NodeJS.ErrnoException) => {
      throw new CommandFailed(`cannot listen on ${c.host}:${c.port}: ${e.code === 'EADDRINUSE' ? 'address already in use' : e.message}`);
    });
    // After listen (a busy port fails at once) and before 'listening' is printed: a client that
    // connects meanwhile waits in the backlog.
    warmUp(server, set !== undefined, c.warmUpHandshakes, log);
    const address = server.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    const dcs = set ? set.entries.map((e) => `${signatureSchemeName(e.dcCertVerifyAlgorithm)} until ${e.expiresAt.toISOString()}`).join(', ') : 'none';
    ctx.stdout(`listening on https://${host}:${address.port} (delegated credentials: ${dcs})\n`);

    await new Promise<void>((resolve) => {
      const stop = (): void => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        server.close(() => resolve());
        // Open connections are short-lived test requests: cut them rather than wait.
        for (const raw of open) raw.destroy();
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    return 0;
  },
});
