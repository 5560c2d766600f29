/**
 * node:tls (OpenSSL) as a terminating engine: TLS 1.2-only clients, and TLS 1.3 certificate
 * handshakes when the measurement says it is the faster engine (router.ts).
 *
 * The router already read the ClientHello off the socket; those bytes are unshifted back and the
 * raw socket is wrapped in a server-side tls.TLSSocket, which feeds a socket's already-buffered
 * data to OpenSSL before reading from the handle (so nothing is lost and no copy of the stream is
 * made). One SecureContext per loaded material (cached), so a credential reload changes what new
 * handshakes see and leaves established connections alone.
 */
import { constants } from 'node:crypto';
import type { Socket } from 'node:net';
import { createSecureContext, TLSSocket, type SecureContext } from 'node:tls';
import { derToPem } from '../tls/x509/index.js';
import type { ServingMaterial } from './material.js';

const contexts = new WeakMap<ServingMaterial, SecureContext>();

/**
 * What our own stack offers (src/tls/suites.ts, src/tls/tls12/suites.ts), so a client sees one
 * set whichever engine answers: TLS 1.3's AEAD suites, and for TLS 1.2 ECDHE with AES-GCM or
 * ChaCha20-Poly1305 only. Node's default list also has static RSA key exchange, which RFC 9345
 * §7.6 asks operators of a DC-enabled RSA certificate to avoid (an RSA decryption oracle would
 * forge credentials) and which has no forward secrecy, and CBC suites.
 */
const NODE_ENGINE_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** Our groups in our order (src/tls/key-exchange.ts SUPPORTED_GROUPS); Node's default adds X448 and P-521. */
const NODE_ENGINE_GROUPS = 'X25519MLKEM768:X25519:SecP256r1MLKEM768:P-256:P-384';
/** The same without the ML-KEM hybrids, for a node built against an OpenSSL older than 3.5. */
const NODE_ENGINE_CLASSIC_GROUPS = 'X25519:P-256:P-384';

export function secureContextFor(material: ServingMaterial): SecureContext {
  let ctx = contexts.get(material);
  if (!ctx) {
    if (!material.certificateKey) throw new Error('node:tls needs the certificate key (tls.key)');
    const options = {
      cert: material.credentials.certificateChain.map((der) => derToPem(der, 'CERTIFICATE')).join(''),
      key: material.certificateKey.export({ type: 'pkcs8', format: 'pem' }),
      minVersion: 'TLSv1.2',
      ciphers: NODE_ENGINE_CIPHERS,
      honorCipherOrder: true,
      // Our stack refuses every renegotiation (RFC 5746 §4.1 lets a server). node:tls's own limit
      // (tls.CLIENT_RENEG_LIMIT) applies only to sockets of a tls.Server, not to this standalone
      // TLSSocket: without this option a client could renegotiate without end, each one a full
      // handshake signed by the certificate key, on a connection the limits already admitted.
      secureOptions: constants.SSL_OP_NO_RENEGOTIATION,
    } as const;
    try {
      ctx = createSecureContext({ ...options, ecdhCurve: NODE_ENGINE_GROUPS });
    } catch {
      // One unknown group name fails the whole list (OpenSSL < 3.5 has no ML-KEM).
      ctx = createSecureContext({ ...options, ecdhCurve: NODE_ENGINE_CLASSIC_GROUPS });
    }
    contexts.set(material, ctx);
  }
  return ctx;
}

export interface NodeHandshakeOptions {
  readonly alpnProtocols?: readonly string[];
  readonly timeoutMs: number;
}

/** Replays `buffered` and runs the handshake; resolves with the secure stream. */
export function terminateWithNode(socket: Socket, buffered: Buffer, material: ServingMaterial, options: NodeHandshakeOptions): Promise<TLSSocket> {
  socket.unshift(buffered);
  const tlsSocket = new TLSSocket(socket, {
    isServer: true,
    secureContext: secureContextFor(material),
    ...(options.alpnProtocols && options.alpnProtocols.length > 0 ? { ALPNProtocols: [...options.alpnProtocols] } : {}),
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      tlsSocket.destroy();
      reject(new Error(`handshake not complete after ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    tlsSocket.once('secure', () => {
      clearTimeout(timer);
      tlsSocket.removeListener('error', onError);
      tlsSocket.on('error', () => {}); // until the proxy attaches its listener
      tlsSocket.removeListener('close', onClose);
      tlsSocket.removeListener('end', onClose);
      resolve(tlsSocket);
    });
    const onError = (err: Error): void => {
      clearTimeout(timer);
      tlsSocket.destroy();
      reject(err);
    };
    const onClose = (): void => {
      clearTimeout(timer);
      tlsSocket.destroy();
      reject(new Error('the client closed the connection during the handshake'));
    };
    tlsSocket.once('error', onError);
    tlsSocket.once('close', onClose);
    // The socket is allowHalfOpen: a client's FIN during the handshake is an 'end' and no 'close',
    // which would hold the connection until the handshake deadline.
    tlsSocket.once('end', onClose);
  });
}
