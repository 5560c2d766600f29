// The key server's own mutual-TLS material, from one Secret in its namespace (default
// `dc-operator-keyserver-tls`: tls.crt, tls.key, ca.crt), issued by the controller from the CA it
// manages. Read from the API and followed: a valid new version replaces the credentials for new
// connections; an invalid one is refused (logged) and the working one kept.
import { createSecureContext } from 'node:tls';
import type { V1Secret } from '@kubernetes/client-node';
import { certificatesOfPem } from '../tls/x509/index.js';

export const DEFAULT_TLS_SECRET = 'dc-operator-keyserver-tls';

export interface ServingCredentials {
  readonly cert: string;
  readonly key: string;
  readonly ca: string;
  /** The Secret's resourceVersion: a version already tried is not tried again. */
  readonly version: string;
}

/** The credentials in `secret`, checked to make a TLS context; throws an Error saying what to fix. */
export function servingCredentialsOf(secret: V1Secret): ServingCredentials {
  const where = `Secret ${secret.metadata?.namespace ?? ''}/${secret.metadata?.name ?? ''}`;
  const text = (k: string): string => {
    const v = secret.data?.[k];
    if (v === undefined || v === '') throw new Error(`${where} has no ${k} (it needs tls.crt, tls.key and ca.crt)`);
    return Buffer.from(v, 'base64').toString('utf8');
  };
  const cert = text('tls.crt');
  const key = text('tls.key');
  const ca = text('ca.crt');
  // A ca.crt without a certificate would make node trust no client at all: every sidecar refused.
  let cas: number;
  try {
    cas = certificatesOfPem(ca).ders.length;
  } catch (err) {
    throw new Error(`${where}: ca.crt is not PEM certificates (${err instanceof Error ? err.message : String(err)})`);
  }
  if (cas === 0) throw new Error(`${where}: ca.crt holds no certificate`);
  try {
    createSecureContext({ cert, key, ca });
  } catch (err) {
    throw new Error(`${where}: tls.crt, tls.key and ca.crt do not make a TLS server (${err instanceof Error ? err.message : String(err)})`);
  }
  return { cert, key, ca, version: secret.metadata?.resourceVersion ?? '' };
}
