/**
 * Resumption with client authentication against a real client (openssl s_client): a session whose
 * client certificate our server verified resumes under the same client authentication
 * configuration, and a server sharing the ticket key but trusting another CA set does a full
 * handshake that asks for the certificate again instead of resuming it as authenticated.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { issueCertificate } from '../../src/cli/pki/dev-pki.js';
import { httpGet, killAll, makePki, run, startOurServer, type OurServer, type Pki } from './support.js';

void describe('our server resumes authenticated clients only under the client authentication that verified them', () => {
  let pki: Pki;
  let sameCa: OurServer;
  let otherCaSet: OurServer;
  before(async () => {
    pki = await makePki();
    const now = Date.now();
    const other = await issueCertificate({ commonName: 'another interop CA', isCA: true, notBefore: new Date(now - 3600_000), notAfter: new Date(now + 30 * 86400_000) }, 'ecdsa-p256');
    const ticketKey = randomBytes(32);
    const common = { certificates: [{ cert: pki.serverPem, key: pki.serverKeyPem }], requestCert: true, rejectUnauthorized: true, ticketKey };
    sameCa = await startOurServer({ ...common, ca: [pki.caPem] });
    // Also trusts the client's CA, so the full handshake succeeds: only the resumption differs.
    otherCaSet = await startOurServer({ ...common, ca: [pki.caPem, other.pem] });
  });
  after(async () => {
    killAll();
    await Promise.all([sameCa?.close(), otherCaSet?.close()]);
    pki?.cleanup();
  });

  const sClient = (port: number, sess: string[]) =>
    run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-tls1_3', '-CAfile', pki.caCrt, '-cert', pki.clientCrt, '-key', pki.clientKey, '-ign_eof', ...sess], { input: httpGet() });

  void it('s_client -cert -sess_out, then -sess_in: "Reused" on the same server, "New" (the certificate verified again) on one trusting another CA set', { timeout: 60_000 }, async () => {
    const sess = join(pki.dir, 'client-auth-sess.pem');
    const first = await sClient(sameCa.port, ['-sess_out', sess]);
    assert.match(first.output, /^New, TLSv1\.3/m, first.output);
    assert.match(first.stdout, / resumed=no .*client=interop-client /);

    const again = await sClient(sameCa.port, ['-sess_in', sess]);
    assert.match(again.output, /^Reused, TLSv1\.3/m, again.output);
    assert.match(again.stdout, / resumed=yes /);

    const elsewhere = await sClient(otherCaSet.port, ['-sess_in', sess]);
    assert.equal(elsewhere.code, 0, elsewhere.output);
    assert.match(elsewhere.output, /^New, TLSv1\.3/m, elsewhere.output);
    assert.match(elsewhere.stdout, / resumed=no .*client=interop-client /);
    assert.equal(otherCaSet.connections.filter((c) => c.resumed).length, 0);
    rmSync(sess);
  });
});
