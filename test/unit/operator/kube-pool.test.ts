/**
 * PooledKubeConfig: API requests share keep-alive connections instead of one TCP + TLS handshake
 * each. Checked against a local HTTPS server that counts connections, with a client certificate as
 * a kubeconfig user presents one, so an upgrade of @kubernetes/client-node that bypasses the pooling
 * (2.x moved from https agents to undici dispatchers) fails here.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { CoreV1Api } from '@kubernetes/client-node';
import { issueCertificate, KeyUsage } from '../../../src/cli/pki/dev-pki.js';
import { PooledKubeConfig } from '../../../src/operator/kube.js';

void describe('PooledKubeConfig', () => {
  void it('sends sequential API requests over a pool of keep-alive TLS connections, with the client certificate', async () => {
    const ca = await issueCertificate({ commonName: 'test CA', isCA: true }, 'ecdsa-p256');
    const issuer = { certificateDer: ca.der, signingKey: ca.key.keys.privateKey };
    const serving = await issueCertificate({ commonName: 'apiserver', ipAddresses: ['127.0.0.1'], extendedKeyUsage: ['serverAuth'] }, 'ecdsa-p256', issuer);
    const client = await issueCertificate({ commonName: 'operator', extendedKeyUsage: ['clientAuth'], keyUsage: KeyUsage.digitalSignature }, 'ecdsa-p256', issuer);
    let connections = 0;
    const clientNames: string[] = [];
    const server = createServer({ cert: serving.pem, key: serving.key.privateKeyPem, ca: ca.pem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      clientNames.push(String(peer.subject?.CN));
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ kind: 'NamespaceList', apiVersion: 'v1', metadata: { resourceVersion: '1' }, items: [] }));
    });
    server.on('secureConnection', () => connections++);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const kc = new PooledKubeConfig();
    try {
      const { port } = server.address() as AddressInfo;
      kc.loadFromOptions({
        clusters: [{ name: 'c', server: `https://127.0.0.1:${port}`, caData: Buffer.from(ca.pem).toString('base64') }],
        users: [{ name: 'u', certData: Buffer.from(client.pem).toString('base64'), keyData: Buffer.from(client.key.privateKeyPem).toString('base64') }],
        contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
        currentContext: 'x',
      });
      const core = kc.makeApiClient(CoreV1Api);
      const requests = 10;
      for (let i = 0; i < requests; i++) await core.listNamespace();
      assert.deepEqual(clientNames, new Array<string>(requests).fill('operator'));
      // undici may open a second connection while the first response is being released; without
      // the pool every request opens its own.
      assert.ok(connections <= 2, `${requests} requests used ${connections} TLS connections`);

      // A rotated client certificate (an exec plugin's) is a new agent: the options are compared, not assumed.
      const rotated = await issueCertificate({ commonName: 'operator-rotated', extendedKeyUsage: ['clientAuth'], keyUsage: KeyUsage.digitalSignature }, 'ecdsa-p256', issuer);
      kc.loadFromOptions({
        clusters: [{ name: 'c', server: `https://127.0.0.1:${port}`, caData: Buffer.from(ca.pem).toString('base64') }],
        users: [{ name: 'u', certData: Buffer.from(rotated.pem).toString('base64'), keyData: Buffer.from(rotated.key.privateKeyPem).toString('base64') }],
        contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
        currentContext: 'x',
      });
      const before = connections;
      for (let i = 0; i < 3; i++) await kc.makeApiClient(CoreV1Api).listNamespace();
      assert.deepEqual(clientNames.slice(requests), ['operator-rotated', 'operator-rotated', 'operator-rotated']);
      assert.ok(connections > before && connections <= before + 2, `the rotated certificate: ${connections - before} new connections`);
    } finally {
      kc.destroyAgents();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
