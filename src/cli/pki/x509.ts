/**
 * The one place that loads @peculiar/x509: version 2 resolves its services through tsyringe,
 * which needs a Reflect metadata polyfill evaluated before the library itself, and it must be
 * pointed at node's WebCrypto. Import x509 from here, never from '@peculiar/x509' directly.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };
