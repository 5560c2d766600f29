/** The key server's serving Secret: what it must hold, and what it says when it does not. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Secret } from '@kubernetes/client-node';
import { servingCredentialsOf } from '../../../src/keyserver/serving-secret.js';
import { makeIdentityPki, type IdentityPki } from './pki.js';

let pki: IdentityPki;
before(() => (pki = makeIdentityPki()));
after(() => pki.cleanup());

const secret = (data: Record<string, string>): V1Secret => ({
  metadata: { namespace: 'dc-operator', name: 'dc-operator-keyserver-tls', resourceVersion: '7' },
  data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
});

void describe('servingCredentialsOf', () => {
  void it('accepts tls.crt, tls.key and ca.crt that make a TLS server', () => {
    const c = servingCredentialsOf(secret({ 'tls.crt': pki.server.cert, 'tls.key': pki.server.key, 'ca.crt': pki.ca.cert }));
    assert.equal(c.version, '7');
    assert.equal(c.ca, pki.ca.cert);
  });
  void it('names the Secret and what is wrong', () => {
    const other = pki.certificate('other');
    for (const [data, message] of [
      [{ 'tls.crt': pki.server.cert, 'tls.key': pki.server.key }, /dc-operator\/dc-operator-keyserver-tls has no ca\.crt/],
      [{ 'tls.crt': pki.server.cert, 'tls.key': pki.server.key, 'ca.crt': pki.ca.key }, /ca\.crt holds no certificate/],
      [{ 'tls.crt': pki.server.cert, 'tls.key': other.key, 'ca.crt': pki.ca.cert }, /do not make a TLS server/],
    ] as const) {
      assert.throws(() => servingCredentialsOf(secret(data)), message);
    }
  });
});
