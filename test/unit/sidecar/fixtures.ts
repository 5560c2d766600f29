/**
 * Real credentials for sidecar tests: a CA, a leaf with the DelegationUsage extension (and
 * digitalSignature) for localhost/127.0.0.1, and delegated credentials issued with the DC
 * library, laid out as the operator's output Secret (tls.crt, <algorithm>.cred/.key, optional
 * tls.key).
 */
import { createPrivateKey } from 'node:crypto';
import { asIssuer, issueCertificate, type IssuedCertificate, type KeyType } from '../../../src/cli/pki/dev-pki.js';
import { issueDelegatedCredential, type DcAlgorithmName } from '../../../src/tls/delegated/index.js';
import { createKeySigner } from '../../../src/tls/signer.js';
import { sidecarConfig, type FlagValues, type SidecarConfig } from '../../../src/sidecar/config.js';
import { MaterialStore, validateServingMaterial } from '../../../src/sidecar/material.js';
import type { VolumeFiles } from './kubelet-volume.js';
import type { ClientHello, ClientHelloExtensions } from '../../../src/tls/messages/client-hello.js';

export interface TestPki {
  readonly ca: IssuedCertificate;
  readonly leaf: IssuedCertificate;
}

export async function makePki(keyType: KeyType = 'ecdsa-p256'): Promise<TestPki> {
  const ca = await issueCertificate({ commonName: 'sidecar test CA', isCA: true }, 'ecdsa-p256');
  const leaf = await issueCertificate(
    {
      commonName: 'localhost',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
      delegationUsage: 'non-critical',
      extendedKeyUsage: ['serverAuth'],
    },
    keyType,
    asIssuer(ca),
  );
  return { ca, leaf };
}

export interface CredentialFilesOptions {
  readonly algorithms?: readonly DcAlgorithmName[];
  readonly validitySeconds?: number;
  /** Include tls.key (local fallback). */
  readonly certificateKey?: boolean;
  /** Issue "now" as this time (a credential that expires soon, or has already expired). */
  readonly now?: Date;
}

/** The operator's Secret layout for `pki.leaf`, with freshly issued DCs. */
export async function credentialFiles(pki: TestPki, options: CredentialFilesOptions = {}): Promise<Record<string, string | Uint8Array>> {
  const signer = createKeySigner(createPrivateKey(pki.leaf.key.privateKeyPem));
  const files: Record<string, string | Uint8Array> = { 'tls.crt': pki.leaf.pem };
  for (const algorithm of options.algorithms ?? ['ecdsa_secp256r1_sha256']) {
    const dc = await issueDelegatedCredential({
      certificate: pki.leaf.der,
      signer,
      dcAlgorithm: algorithm,
      validitySeconds: options.validitySeconds ?? 86_400,
      ...(options.now ? { now: options.now } : {}),
    });
    files[`${algorithm}.cred`] = dc.delegatedCredential;
    files[`${algorithm}.key`] = dc.privateKeyPem;
  }
  if (options.certificateKey) files['tls.key'] = pki.leaf.key.privateKeyPem;
  return files;
}

export function withFile(files: VolumeFiles, name: string, content: string | Uint8Array | undefined): Record<string, string | Uint8Array> {
  const out: Record<string, string | Uint8Array> = { ...files };
  if (content === undefined) delete out[name];
  else out[name] = content;
  return out;
}

/** A ClientHello with these extensions (routing tests: nothing else of it is read). */
export function clientHello(extensions: Partial<ClientHelloExtensions>): ClientHello {
  return {
    legacyVersion: 0x0303,
    random: new Uint8Array(32),
    legacySessionId: new Uint8Array(0),
    cipherSuites: [0x1301],
    legacyCompressionMethods: Uint8Array.of(0),
    extensions: { unknown: [], ...extensions },
  };
}

/**
 * A sidecar configuration for an in-process sidecar (tests, benches): TLS and metrics on
 * loopback, ephemeral ports, the app at `upstreamPort`; `extra` adds or overrides flags.
 */
export function loopbackSidecarConfig(dcDir: string, upstreamPort: number, extra: FlagValues = {}): SidecarConfig {
  return sidecarConfig({ 'dc-dir': dcDir, address: '127.0.0.1', port: '0', upstream: String(upstreamPort), 'metrics-address': '127.0.0.1', 'metrics-port': '0', ...extra });
}

/** A MaterialStore holding `files` (as `credentialFiles` lays them out), validated as if read from a directory. */
export function memoryStore(files: Record<string, string | Uint8Array>): MaterialStore {
  const store = new MaterialStore();
  store.replace(validateServingMaterial('/mem', Object.fromEntries(Object.entries(files).map(([k, v]) => [k, typeof v === 'string' ? Buffer.from(v) : v]))));
  return store;
}
