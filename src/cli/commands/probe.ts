import { connect, type TLSSocket } from '../../tls/socket.js';
import { namedGroupName, signatureSchemeName } from '../../tls/constants.js';
import { delegatedCredentialPeerHooks, type DelegatedCredentialDetails } from '../../tls/delegated/index.js';
import { defineCommand } from '../framework/command.js';
import { CommandFailed, InputError, UsageError } from '../framework/errors.js';
import { readTextFile, resolvePath } from '../framework/files.js';
import { outputFormat, outputOption, printResult } from '../framework/output.js';
import { durationFlag, hostPortArgument, humanDuration } from './tls-inputs.js';

/** Exit codes of `dcctl probe`. */
export const PROBE_DC_USED = 0;
export const PROBE_NO_DC = 1;
export const PROBE_FAILED = 2;

export interface ProbeResult {
  readonly host: string;
  readonly port: number;
  readonly servername: string;
  readonly delegatedCredential: boolean;
  /** How the server authenticated: 'delegated-credential' or 'certificate'. */
  readonly authentication: string;
  readonly algorithm?: string;
  readonly expiresAt?: string;
  readonly remainingSeconds?: number;
  readonly signatureScheme?: string;
  readonly cipherSuite: string;
  readonly group: string;
  readonly alpnProtocol?: string;
}

/**
 * The record layer refuses a first record whose version is not 3.x; say what the peer spoke
 * instead. A plain-HTTP server answers a ClientHello with "HTTP/1.1 400 ...": 'H' as the content
 * type and "TT" (84.84) as the version.
 */
export function notTlsHint(message: string): string | undefined {
  const m = /record version (\d+)\.(\d+) is not TLS/.exec(message);
  if (!m) return undefined;
  if (m[1] === '84' && m[2] === '84') return 'the peer answered in plain HTTP, not TLS (is this the HTTP port? probe the HTTPS one)';
  return 'the peer did not answer in TLS (its first bytes are not a TLS record: another protocol on this port?)';
}

export const probe = defineCommand({
  path: ['probe'],
  summary: 'Handshake with a TLS server offering delegated credentials; report whether one was used',
  description: `
Connects with our TLS 1.3 client (key shares X25519MLKEM768 and x25519), offers the
delegated_credential extension (34) for ed25519, ECDSA, RSA-PSS and ML-DSA (mldsa44/65/87)
credential keys, verifies the server's chain against --ca and its name, and
validates any delegated credential with every RFC 9345 receiver rule before checking the
CertificateVerify made with the credential's key.`,
  exitStatus: {
    0: 'a delegated credential was used and verified',
    1: 'the server completed the handshake without one (it signed with its certificate key)',
    2: 'the handshake failed (connection refused, untrusted chain, invalid credential, timeout, ...), or a usage or input error (a flag is wrong, --ca is unreadable or has no certificate)',
  },
  options: {
    ca: { type: 'string', value: 'FILE', description: 'trust anchors (PEM) for the server certificate', required: true },
    servername: { type: 'string', value: 'NAME', description: 'name to send as SNI and to verify the certificate against (default: HOST)' },
    timeout: { type: 'string', value: 'DURATION', description: 'give up after this long', default: '10s' },
    output: outputOption,
    json: { type: 'boolean', description: 'same as -o json' },
  },
  positionals: [{ name: 'HOST:PORT', description: 'the server, e.g. 127.0.0.1:8443 or [::1]:8443', required: true }],
  examples: ['dcctl probe 127.0.0.1:8443 --ca .dev/ca/ca.crt --servername api.example.test', 'dcctl probe api.example.test:443 --ca ca.crt -o json'],
  validate(v, positionals) {
    const { host, port } = hostPortArgument('HOST:PORT', positionals[0]!);
    const timeoutSeconds = durationFlag('--timeout', v.timeout);
    if (timeoutSeconds <= 0) throw new UsageError('must be longer than 0s', '--timeout');
    return { host, port, servername: v.servername ?? host, ca: v.ca, timeoutMs: timeoutSeconds * 1000, format: outputFormat(v.output, v.json) };
  },
  async run(c, ctx) {
    const caPem = await readTextFile(resolvePath(ctx.cwd, c.ca), '--ca');
    if (!caPem.includes('-----BEGIN CERTIFICATE-----')) throw new InputError(`--ca ${c.ca}: no PEM CERTIFICATE found`);
    let socket: TLSSocket | undefined;
    const result = await new Promise<ProbeResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket?.destroy();
        reject(new Error(`no handshake within ${humanDuration(c.timeoutMs / 1000)}`));
      }, c.timeoutMs);
      try {
        socket = connect({
          host: c.host,
          port: c.port,
          servername: c.servername,
          ca: [caPem],
          alpnProtocols: ['http/1.1'],
          serverCredentialHooks: delegatedCredentialPeerHooks({ peer: 'server' }),
          handshakeTimeout: c.timeoutMs,
          now: () => ctx.now(),
        });
      } catch (e) {
        clearTimeout(timer);
        reject(e instanceof Error ? e : new Error(String(e)));
        return;
      }
      const s = socket;
      s.once('error', (err: Error) => {
        clearTimeout(timer);
        reject(err);
      });
      s.once('secureConnect', () => {
        clearTimeout(timer);
        const info = s.handshakeInfo!;
        const mode = info.serverMode;
        const dc = mode.authentication === 'delegated-credential' ? (mode.details as DelegatedCredentialDetails) : undefined;
        resolve({
          host: c.host,
          port: c.port,
          servername: c.servername,
          delegatedCredential: dc !== undefined,
          authentication: mode.authentication,
          ...(dc
            ? {
                algorithm: dc.algorithm,
                expiresAt: dc.expiresAt.toISOString(),
                remainingSeconds: Math.floor((dc.expiresAt.getTime() - ctx.now().getTime()) / 1000),
              }
            : {}),
          ...(mode.signatureScheme !== undefined ? { signatureScheme: signatureSchemeName(mode.signatureScheme) } : {}),
          cipherSuite: info.cipherSuiteName,
          group: namedGroupName(info.group),
          ...(info.alpnProtocol !== undefined ? { alpnProtocol: info.alpnProtocol } : {}),
        });
        s.end();
        s.on('error', () => undefined);
      });
    }).catch((e: Error & { code?: string }) => {
      const why = e.code === 'ECONNREFUSED' ? 'connection refused' : (notTlsHint(e.message) ?? e.message.split('\n')[0]);
      throw new CommandFailed(`${c.host}:${c.port}: handshake failed: ${why}`, PROBE_FAILED);
    });

    printResult(ctx, c.format, result, () => {
      const lines = [`connected to ${c.host}:${c.port} as ${c.servername} (TLSv1.3, ${result.cipherSuite}, ${result.group})`];
      if (result.delegatedCredential) {
        lines.push('delegated credential: yes, verified', `algorithm: ${result.algorithm}`, `expires: ${result.expiresAt} (in ${humanDuration(result.remainingSeconds ?? 0)})`);
      } else {
        lines.push(`delegated credential: no (the server signed with its certificate key${result.signatureScheme ? `, ${result.signatureScheme}` : ''})`);
      }
      return lines.map((l) => `${l}\n`).join('');
    });
    return result.delegatedCredential ? PROBE_DC_USED : PROBE_NO_DC;
  },
});
