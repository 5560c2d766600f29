/**
 * Test PKI for the in-cluster key server, made with the openssl CLI in a temp dir: a CA, the key
 * server's serving certificate (127.0.0.1, localhost), client certificates whose URI SAN is an
 * identity, and certificate/key pairs standing for the certificates DelegatedCredentials reference.
 */
import { execFileSync } from 'node:child_process';
import { createPrivateKey, randomBytes, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Pair {
  /** PEM */
  readonly cert: string;
  readonly key: string;
}

export interface IdentityPki {
  readonly dir: string;
  readonly ca: Pair;
  /** serverAuth for 127.0.0.1 and localhost */
  readonly server: Pair;
  /** A client certificate (clientAuth) issued by `ca` with the URI SANs given (none: no URI SAN). */
  client(name: string, ...uris: string[]): Pair;
  /** A sidecar's client certificate as the controller issues it: the identity URI and its DelegatedCredential's UID (subject UID). */
  sidecar(name: string, uri: string, uid: string): Pair;
  /** A self-signed P-256 certificate and its key: what a certificate Secret holds. */
  certificate(name: string, curve?: 'P-256' | 'P-384'): Pair;
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

export function makeIdentityPki(): IdentityPki {
  const dir = mkdtempSync(join(tmpdir(), 'keyserver-pki-'));
  const read = (name: string): string => readFileSync(join(dir, name), 'utf8');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=keyserver test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  let serial = 1;
  const issue = (name: string, ext: string, subject = `/CN=${name}`): Pair => {
    openssl(['req', '-new', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], dir);
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-set_serial', String(serial++), '-days', '1',
      '-extfile', `${name}.ext`, '-out', `${name}.crt`], dir);
    return { cert: read(`${name}.crt`), key: read(`${name}.key`) };
  };
  const server = issue('server', 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n');
  return {
    dir,
    ca: { cert: read('ca.crt'), key: read('ca.key') },
    server,
    client(name, ...uris) {
      const san = uris.length > 0 ? `subjectAltName=${uris.map((u) => `URI:${u}`).join(',')}\n` : '';
      return issue(name, `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n${san}`);
    },
    sidecar(name, uri, uid) {
      return issue(name, `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nsubjectAltName=URI:${uri}\n`, `/O=dc-operator/UID=${uid}`);
    },
    certificate(name, curve = 'P-256') {
      openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', `ec_paramgen_curve:${curve}`, '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`,
        '-days', '1', '-subj', `/CN=${name}`], dir);
      return { cert: read(`${name}.crt`), key: read(`${name}.key`) };
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

function der(tag: number, body: Buffer): Buffer {
  const length = body.length < 128 ? Buffer.of(body.length) : ((n) => Buffer.concat([Buffer.of(0x80 | n.length), n]))(Buffer.from(body.length.toString(16).padStart(body.length > 0xff ? 4 : 2, '0'), 'hex'));
  return Buffer.concat([Buffer.of(tag), length, body]);
}
const integer = (b: Buffer): Buffer => der(0x02, b[0]! & 0x80 ? Buffer.concat([Buffer.of(0), b]) : b);
/** An odd number of exactly `bits` bits. */
function number(bits: number): Buffer {
  const b = randomBytes(Math.ceil(bits / 8));
  const spare = b.length * 8 - bits;
  b[0] = (b[0]! & (0xff >> spare)) | (0x80 >> spare);
  b[b.length - 1]! |= 1;
  return b;
}
/** A PKCS#1 RSAPrivateKey with a modulus of `bits` bits (random numbers: never used to sign). */
export function rsaKeyOfSize(bits: number): KeyObject {
  const half = Math.ceil(bits / 2);
  const fields = [Buffer.of(0), number(bits), Buffer.of(1, 0, 1), number(bits - 8), number(half), number(half), number(half - 8), number(half - 8), number(half - 8)];
  return createPrivateKey({ key: der(0x30, Buffer.concat(fields.map(integer))), format: 'der', type: 'pkcs1' });
}
