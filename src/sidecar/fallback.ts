/**
 * What serves clients without DC support, decided from the loaded bundle and the keyless client:
 * the effective fallback, whether it works now, and the sentence said at startup and whenever it
 * changes.
 *
 *   --keyless-* flags given                    Keyless (the flags win over the bundle)
 *   `fallback` file in the bundle              what it says (Keyless, None, CertificateKey)
 *   no `fallback` file, tls.key                CertificateKey (bundles of older operators)
 *   no `fallback` file, keyless files          Keyless
 *   none of these                              unset: non-DC clients are refused, with a warning
 */
import type { Fallback } from '../operator/api/serving-bundle.js';
import type { KeylessFallback } from './keyless-fallback.js';
import type { ServingMaterial } from './material.js';
import type { FallbackSummary } from './serving-report.js';

export type EffectiveFallback = Fallback | 'unset';

type KeylessView = Pick<KeylessFallback, 'source' | 'config' | 'ready' | 'refusal'>;

export function effectiveFallback(material: ServingMaterial, keyless: KeylessView | undefined): EffectiveFallback {
  if (keyless?.source === 'flags') return 'Keyless';
  if (material.fallback.declared) return material.fallback.declared;
  if (material.certificateKey) return 'CertificateKey';
  if (material.fallback.keyless.kind !== 'absent') return 'Keyless';
  return 'unset';
}

export const UNSET_FALLBACK_REASON =
  'the bundle declares no fallback and holds no fallback configuration (an older operator or a hand-made Secret): non-DC clients will be refused';

export function fallbackSummary(material: ServingMaterial | undefined, keyless: KeylessView | undefined): FallbackSummary {
  if (!material) return { fallback: 'unset', ready: false, reason: 'no valid credentials loaded' };
  const fallback = effectiveFallback(material, keyless);
  switch (fallback) {
    case 'CertificateKey':
      return { fallback, ready: material.certificateKey !== undefined, reason: 'the certificate key (tls.key) is in the pod' };
    case 'None':
      return { fallback, ready: true, reason: 'DC clients only; other clients get handshake_failure' };
    case 'Keyless': {
      if (!keyless?.config) return { fallback, ready: false, reason: keyless?.refusal ?? 'no keyless configuration loaded' };
      return { fallback, ...keyless.ready() };
    }
    case 'unset':
      return { fallback, ready: false, reason: UNSET_FALLBACK_REASON };
  }
}

/** The sentence about non-DC clients, said at startup and when it changes. */
export function fallbackStatement(material: ServingMaterial, keyless: KeylessView | undefined, certificateEngine: string): { level: 'info' | 'warn'; message: string } {
  const fallback = effectiveFallback(material, keyless);
  switch (fallback) {
    case 'CertificateKey':
      return { level: 'info', message: `fallback CertificateKey: non-DC TLS 1.3 clients are served with tls.key (engine ${certificateEngine}), TLS 1.2 clients by node:tls` };
    case 'None':
      return { level: 'info', message: 'fallback None: only clients that support delegated credentials are served; other clients get handshake_failure' };
    case 'Keyless': {
      const c = keyless?.config;
      if (!c) return { level: 'warn', message: `fallback Keyless, but no usable keyless configuration: ${keyless?.refusal ?? 'none loaded'}; non-DC clients are refused` };
      const from = keyless.source === 'flags' ? ' (--keyless-* flags, which override the bundle)' : '';
      return {
        level: 'info',
        message: `fallback Keyless: non-DC TLS 1.3 clients are served with signatures from key server ${c.address}${from} as ${c.identities.join(', ') || 'a client without URI SAN'}, client certificate valid until ${c.clientNotAfter.toISOString()}`,
      };
    }
    case 'unset':
      return { level: 'warn', message: `${UNSET_FALLBACK_REASON}; set spec.fallback on the DelegatedCredential (Keyless is the default of current operators)` };
  }
}
