/**
 * What both sides of a TLS 1.2 handshake hold once the hellos are exchanged, and the traffic
 * state they hand to the connection at the end.
 */
import type { TrafficState } from '../connection.js';
import type { Transcript } from '../key-schedule.js';
import type { ClientHello } from '../messages/client-hello.js';
import { exportKeyingMaterial12 } from './prf.js';
import type { Tls12SuiteParams } from './suites.js';

/** The hellos' outcome: the ClientHello, the suite, the running transcript, the server random, ALPN. */
export interface Negotiated {
  readonly hello: ClientHello;
  readonly suite: Tls12SuiteParams;
  readonly transcript: Transcript;
  readonly serverRandom: Uint8Array;
  readonly alpn: string | undefined;
}

/** TLS 1.2 has no traffic secrets: one empty array for every connection (nothing in it to change). */
const NO_SECRET = new Uint8Array(0);
const noExporterMasterSecret = (): Uint8Array => NO_SECRET;

/**
 * The connection's traffic state for TLS 1.2: the record keys are already in the record layer
 * (no traffic secrets, no KeyUpdate); what remains is the exporter over the master secret.
 */
export function tls12TrafficState(hs: Negotiated, masterSecret: Uint8Array): TrafficState {
  const { suite, hello, serverRandom } = hs;
  return {
    suite,
    readSecret: NO_SECRET,
    writeSecret: NO_SECRET,
    exporterMasterSecret: noExporterMasterSecret,
    tls12Exporter: (label, context, length) => exportKeyingMaterial12(suite, masterSecret, hello.random, serverRandom, label, context, length),
  };
}
