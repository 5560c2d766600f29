/**
 * The run-time switch of the native addons (aead.ts, handshake.ts): DC_TLS_NATIVE=off makes all
 * of src/tls use node:crypto (tests rerun suites that way, benches compare both);
 * DC_TLS_AEAD=node turns off the record path's AEAD only (kept from before the handshake addon).
 */

/** Why the addon `which` must not be used, or undefined when it may be. */
export function nativeSwitchedOff(which: 'aead' | 'handshake' = 'handshake'): string | undefined {
  if (process.env['DC_TLS_NATIVE'] === 'off') return 'DC_TLS_NATIVE=off';
  if (which === 'aead' && process.env['DC_TLS_AEAD'] === 'node') return 'DC_TLS_AEAD=node';
  return undefined;
}
