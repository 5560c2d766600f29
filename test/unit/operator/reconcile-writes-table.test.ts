/**
 * The reconciler end to end as a table, in the manner of cert-manager's controller tests: each row
 * is the objects that exist (certificate Secret, DelegatedCredential, an output Secret written
 * earlier) → the Events, the Ready condition and the API writes one reconcile wants. The pure
 * decisions have their own tables (reconcile-table.test.ts); this one holds the side effects, so
 * a change that sends an extra Event or writes a Secret it should not shows up as a diff of a row.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KeyUsage, generateKeyPair, issueCertificate } from '../../../src/cli/pki/dev-pki.js';
import { delegationCertificate, harness, type Harness } from './fakes.js';

const NS = 'web';
const DC = { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-dc-secret' };

/** API writes only: reads are counted by the request-budget tests. */
const writesOf = (h: Harness): string[] => h.cluster.calls.filter((c) => !c.startsWith('get '));

interface Row {
  readonly name: string;
  /** Puts the objects in place; may reconcile once to leave an output Secret behind, then change something. */
  readonly given: (h: Harness) => Promise<void>;
  readonly wantEvents: readonly string[];
  readonly wantReady: `${'True' | 'False'}/${string}`;
  readonly wantWrites: readonly string[];
  /** The output Secret is byte-for-byte what it was before the reconcile under test. */
  readonly wantSecretUnchanged?: boolean;
}

/** A first reconcile that leaves a working output Secret, then forgets what it did. */
async function issuedEarlier(h: Harness): Promise<void> {
  h.cluster.putTlsSecret(NS, 'web-tls', await delegationCertificate());
  h.cluster.putDelegatedCredential(NS, 'web-dc', DC);
  assert.equal((await h.reconciler.reconcile(NS, 'web-dc')).kind, 'done');
}

const rows: readonly Row[] = [
  {
    name: 'a new DelegatedCredential on a good certificate: one Secret created, status written, one Issued Event',
    given: async (h) => {
      h.cluster.putTlsSecret(NS, 'web-tls', await delegationCertificate());
      h.cluster.putDelegatedCredential(NS, 'web-dc', DC);
    },
    wantEvents: ['Normal/Issued'],
    wantReady: 'True/Issued',
    wantWrites: ['create secret web/web-dc-secret', 'update status web/web-dc'],
  },
  {
    name: 'a fresh output Secret: nothing to do, nothing written, no Event',
    given: async (h) => {
      await issuedEarlier(h);
    },
    wantEvents: [],
    wantReady: 'True/Issued',
    wantWrites: [],
    wantSecretUnchanged: true,
  },
  {
    name: 'no certificate Secret: a Warning, no output Secret',
    given: (h) => {
      h.cluster.putDelegatedCredential(NS, 'web-dc', DC);
      return Promise.resolve();
    },
    wantEvents: ['Warning/SecretNotFound'],
    wantReady: 'False/SecretNotFound',
    wantWrites: ['update status web/web-dc'],
  },
  {
    name: 'a certificate without DelegationUsage: a Warning, no output Secret',
    given: async (h) => {
      h.cluster.putTlsSecret(NS, 'web-tls', await delegationCertificate({ delegationUsage: false }));
      h.cluster.putDelegatedCredential(NS, 'web-dc', DC);
    },
    wantEvents: ['Warning/CertificateMissingDelegationUsage'],
    wantReady: 'False/CertificateMissingDelegationUsage',
    wantWrites: ['update status web/web-dc'],
  },
  {
    name: 'a chain with the CA first: CertificateInvalid, no output Secret',
    given: async (h) => {
      const leaf = await delegationCertificate();
      const ca = await issueCertificate({ commonName: 'Example CA', isCA: true, keyUsage: KeyUsage.keyCertSign }, 'ecdsa-p256');
      h.cluster.putTlsSecret(NS, 'web-tls', { ...leaf, pem: ca.pem + leaf.pem });
      h.cluster.putDelegatedCredential(NS, 'web-dc', DC);
    },
    wantEvents: ['Warning/CertificateInvalid'],
    wantReady: 'False/CertificateInvalid',
    wantWrites: ['update status web/web-dc'],
  },
  {
    name: "a tls.key that is not the certificate's: KeyMismatch, no output Secret",
    given: async (h) => {
      h.cluster.putTlsSecret(NS, 'web-tls', await delegationCertificate(), (await generateKeyPair('ecdsa-p256')).privateKeyPem);
      h.cluster.putDelegatedCredential(NS, 'web-dc', DC);
    },
    wantEvents: ['Warning/KeyMismatch'],
    wantReady: 'False/KeyMismatch',
    wantWrites: ['update status web/web-dc'],
  },
  {
    name: 'a working Secret, then the certificate replaced by one that cannot delegate: the working Secret stays',
    given: async (h) => {
      await issuedEarlier(h);
      h.cluster.putTlsSecret(NS, 'web-tls', await delegationCertificate({ delegationUsage: false }));
    },
    wantEvents: ['Warning/CertificateMissingDelegationUsage'],
    wantReady: 'False/CertificateMissingDelegationUsage',
    wantWrites: ['update status web/web-dc'],
    wantSecretUnchanged: true,
  },
  {
    name: "a working Secret, then a key that is not the certificate's: the working Secret stays",
    given: async (h) => {
      await issuedEarlier(h);
      h.cluster.putTlsSecret(NS, 'web-tls', await delegationCertificate(), (await generateKeyPair('ecdsa-p256')).privateKeyPem);
    },
    wantEvents: ['Warning/KeyMismatch'],
    wantReady: 'False/KeyMismatch',
    wantWrites: ['update status web/web-dc'],
    wantSecretUnchanged: true,
  },
];

void describe('one reconcile: objects → Events, Ready and writes', () => {
  for (const row of rows) {
    void it(row.name, async () => {
      const h = harness(new Date());
      await row.given(h);
      const before = structuredClone(h.cluster.secrets.get(`${NS}/web-dc-secret`));
      h.cluster.calls.length = 0;
      h.events.events.length = 0;

      await h.reconciler.reconcile(NS, 'web-dc');

      assert.deepEqual(h.events.events.map((e) => `${e.type}/${e.reason}`), row.wantEvents, 'Events');
      const ready = h.cluster.dcs.get(`${NS}/web-dc`)?.status?.conditions?.find((c) => c.type === 'Ready');
      assert.equal(`${ready?.status}/${ready?.reason}`, row.wantReady, 'Ready condition');
      assert.deepEqual(writesOf(h), row.wantWrites, 'API writes');
      if (row.wantSecretUnchanged) assert.deepEqual(h.cluster.secrets.get(`${NS}/web-dc-secret`), before, 'output Secret untouched');
      else if (row.wantWrites.every((w) => !w.includes('secret'))) assert.equal(h.cluster.secrets.has(`${NS}/web-dc-secret`), false, 'no output Secret');
    });
  }
});
