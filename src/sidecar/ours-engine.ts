/**
 * Our TLS 1.3 stack (src/tls ServerConnection) as a terminating engine.
 *
 * The router has already read the ClientHello bytes off the socket, and the sans-IO connection
 * takes bytes directly, so they are fed in as they are — no unshift, no copy of the stream. The
 * connection object (connection.ts) drives it: no stream in between.
 *
 * One ServerConfig is shared by every connection (ticket key, suites); the credential hook reads
 * the MaterialStore when the handshake reaches its Certificate step, so a reload changes what
 * new handshakes get and never touches established connections.
 */
import type { HandshakeInfo } from '../tls/connection.js';
import { ServerConfig, ServerConnection } from '../tls/server.js';
import type { Signer } from '../tls/signer.js';
import type { MaterialStore, ServingMaterial } from './material.js';
import type { HandshakeMode } from './metrics.js';
import { chooseCredential, type ChoiceDetails } from './router.js';
import type { OursEngine } from './terminator.js';

export interface OursEngineOptions {
  readonly store: MaterialStore;
  /** The keyless signer for a material's certificate, when keyless is configured. */
  readonly keylessFor: ((material: ServingMaterial) => Signer | undefined) | undefined;
  readonly alpnProtocols?: readonly string[];
  readonly keylog?: (line: string) => void;
  /** 'TLSv1.3': no TLS 1.2 (the warm-up of paths that TLS 1.2 clients never take). */
  readonly minVersion?: 'TLSv1.3';
}

export function createServerConfig(options: OursEngineOptions): ServerConfig {
  return new ServerConfig({
    selectCredential: (hello) => {
      const material = options.store.current; // once per handshake
      return chooseCredential(hello, material, material && options.keylessFor?.(material));
    },
    ...(options.alpnProtocols && options.alpnProtocols.length > 0 ? { alpnProtocols: options.alpnProtocols } : {}),
    ...(options.keylog ? { keylog: options.keylog } : {}),
    ...(options.minVersion ? { minVersion: options.minVersion } : {}),
  });
}

export function createOursEngine(options: OursEngineOptions): OursEngine {
  const config = createServerConfig(options);
  return { accept: (hello) => new ServerConnection(config, { clientHello: hello }) };
}

export function modeOf(info: HandshakeInfo): HandshakeMode {
  const details = info.serverMode.details as ChoiceDetails | undefined;
  if (details?.mode) return details.mode;
  switch (info.serverMode.authentication) {
    case 'delegated-credential':
      return 'dc';
    case 'keyless':
      return 'keyless';
    case 'psk':
      return 'resumed';
    default:
      return 'certificate';
  }
}
