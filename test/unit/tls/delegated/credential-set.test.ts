import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SignatureScheme } from '../../../../src/tls/constants.js';
import { verifySignature } from '../../../../src/tls/signature-schemes.js';
import {
  CredentialStore,
  DelegatedCredentialSet,
  DelegationError,
  delegatedCredentialSignedContent,
  encodeDelegatedCredential,
  isServableAt,
  issueDelegatedCredential,
  loadDelegatedCredentialDirectory,
  loadDelegatedCredentialSet,
  readCredentialDirectory,
  readRegularFile,
  type DcAlgorithmName,
  type FileMap,
  type IssuedDelegatedCredential,
} from '../../../../src/tls/delegated/index.js';
import { makeCertificate, type TestCertificate } from './fixtures.js';
import { ecKeyWithForeignScalar } from '../../../support/mismatched-keys.js';

const S = SignatureScheme;
const HOUR = 3600;

function rejectsWith(code: string, pattern: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof DelegationError, `expected DelegationError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, pattern);
    return true;
  };
}

void describe('DelegatedCredentialSet', () => {
  let cert: TestCertificate;
  const now = new Date();
  const issued = new Map<string, IssuedDelegatedCredential>();
  const issue = (dcAlgorithm: DcAlgorithmName, validitySeconds = HOUR, at = now): Promise<IssuedDelegatedCredential> =>
    issueDelegatedCredential({ certificate: cert.der, signer: cert.signer, dcAlgorithm, validitySeconds, now: at });

  before(async () => {
    cert = await makeCertificate({ keyType: 'p256' });
    for (const alg of ['ed25519', 'ecdsa_secp256r1_sha256', 'ecdsa_secp384r1_sha384'] as const) issued.set(alg, await issue(alg));
  });

  const input = (name: string): { delegatedCredential: Uint8Array; privateKey: KeyObject; label: string } => {
    const i = issued.get(name)!;
    return { delegatedCredential: i.delegatedCredential, privateKey: i.privateKey, label: `${name}.cred` };
  };
  const fullSet = (): DelegatedCredentialSet =>
    DelegatedCredentialSet.build({
      certificateChain: [cert.der],
      credentials: [input('ecdsa_secp384r1_sha384'), input('ecdsa_secp256r1_sha256'), input('ed25519')],
      now,
    });
  const CLIENT_SIGALGS = [S.ecdsa_secp256r1_sha256, S.rsa_pss_rsae_sha256, S.ed25519];

  void it('prefers the cheapest credential both of the client lists accept: Ed25519, then P-256, then P-384', () => {
    const set = fullSet();
    assert.deepEqual(
      set.entries.map((e) => e.dcCertVerifyAlgorithm),
      [S.ed25519, S.ecdsa_secp256r1_sha256, S.ecdsa_secp384r1_sha384],
    );
    const all = [S.ecdsa_secp384r1_sha384, S.ecdsa_secp256r1_sha256, S.ed25519];
    assert.equal(set.select({ dcSchemes: all, signatureSchemes: CLIENT_SIGALGS, now })?.dcCertVerifyAlgorithm, S.ed25519);
    assert.equal(
      set.select({ dcSchemes: [S.ecdsa_secp384r1_sha384, S.ecdsa_secp256r1_sha256], signatureSchemes: CLIENT_SIGALGS, now })?.dcCertVerifyAlgorithm,
      S.ecdsa_secp256r1_sha256,
    );
    assert.equal(set.select({ dcSchemes: [S.ecdsa_secp384r1_sha384], signatureSchemes: CLIENT_SIGALGS, now })?.dcCertVerifyAlgorithm, S.ecdsa_secp384r1_sha384);
  });

  void it('falls back to the certificate when the client did not offer the extension or none fits', () => {
    const set = fullSet();
    assert.equal(set.select({ dcSchemes: undefined, signatureSchemes: CLIENT_SIGALGS, now }), undefined);
    assert.equal(set.select({ dcSchemes: [], signatureSchemes: CLIENT_SIGALGS, now }), undefined);
    assert.equal(set.select({ dcSchemes: [S.rsa_pss_pss_sha256], signatureSchemes: CLIENT_SIGALGS, now }), undefined);
  });

  void it("needs the credential's signature algorithm in the client's signature_algorithms, not just its key in extension 34", () => {
    const set = fullSet();
    // The DCs are signed with ecdsa_secp256r1_sha256 (the certificate key); a client without it gets none.
    assert.equal(set.select({ dcSchemes: [S.ed25519, S.ecdsa_secp256r1_sha256], signatureSchemes: [S.ed25519, S.rsa_pss_rsae_sha256], now }), undefined);
  });

  void it('skips expired credentials and ones with more than 7 days left on a clock that went back', async () => {
    const shortLived = await issue('ed25519', 60);
    const set = DelegatedCredentialSet.build({
      certificateChain: [cert.der],
      credentials: [{ delegatedCredential: shortLived.delegatedCredential, privateKey: shortLived.privateKey }, input('ecdsa_secp256r1_sha256')],
      now,
    });
    const lists = { dcSchemes: [S.ed25519, S.ecdsa_secp256r1_sha256], signatureSchemes: CLIENT_SIGALGS };
    assert.equal(set.select({ ...lists, now })?.dcCertVerifyAlgorithm, S.ed25519);
    assert.equal(set.select({ ...lists, now: new Date(now.getTime() + 120_000) })?.dcCertVerifyAlgorithm, S.ecdsa_secp256r1_sha256);
    assert.equal(set.select({ ...lists, now: new Date(now.getTime() + 2 * HOUR * 1000) }), undefined);
    assert.equal(set.select({ ...lists, now: new Date(now.getTime() - 8 * 86400_000) }), undefined);
  });

  void it("gives a signer whose CertificateVerify signatures verify with the credential's key", async () => {
    const entry = fullSet().select({ dcSchemes: [S.ecdsa_secp256r1_sha256], signatureSchemes: CLIENT_SIGALGS, now })!;
    const message = Buffer.from('certificate verify content');
    const signature = await entry.signer.sign(entry.dcCertVerifyAlgorithm, message);
    assert.equal(verifySignature(entry.dcCertVerifyAlgorithm, entry.publicKey, message, signature), true);
    assert.deepEqual(entry.encoded, issued.get('ecdsa_secp256r1_sha256')!.delegatedCredential);
  });

  void it('with requireAlgorithmInDcSchemes, skips a credential signed by an RSA certificate for an NSS-style client', async () => {
    const rsaCert = await makeCertificate({ keyType: 'rsa' });
    const dc = await issueDelegatedCredential({ certificate: rsaCert.der, signer: rsaCert.signer, dcAlgorithm: 'ecdsa_secp256r1_sha256', validitySeconds: HOUR, now });
    const set = DelegatedCredentialSet.build({ certificateChain: [rsaCert.der], credentials: [dc], now });
    // NSS: extension 34 never lists rsa_pss_rsae_*, signature_algorithms does.
    const nss = { dcSchemes: [S.ecdsa_secp256r1_sha256, S.ecdsa_secp384r1_sha384], signatureSchemes: [S.ecdsa_secp256r1_sha256, S.rsa_pss_rsae_sha256], now };
    assert.equal(set.select(nss)?.algorithm, S.rsa_pss_rsae_sha256); // RFC 9345 rule: both lists match
    assert.equal(set.select({ ...nss, requireAlgorithmInDcSchemes: true }), undefined);
    // An ECDSA certificate's credentials are unaffected (their algorithm is in NSS's list).
    const ecdsa = fullSet().select({ ...nss, requireAlgorithmInDcSchemes: true });
    assert.equal(ecdsa?.dcCertVerifyAlgorithm, S.ecdsa_secp256r1_sha256);
  });

  void it('refuses a private key that is not the credential key, naming the credential', () => {
    assert.throws(
      () =>
        DelegatedCredentialSet.build({
          certificateChain: [cert.der],
          credentials: [{ ...input('ed25519'), privateKey: issued.get('ecdsa_secp256r1_sha256')!.privateKey }],
          now,
        }),
      rejectsWith('key-mismatch', /^ed25519\.cred: the private key does not match/),
    );
  });

  void it("refuses a credential key that carries the credential's public key beside another private scalar", () => {
    for (const algorithm of ['ecdsa_secp256r1_sha256', 'ecdsa_secp384r1_sha384'] as const) {
      const own = issued.get(algorithm)!;
      const swapped = ecKeyWithForeignScalar(own.privateKeyPem, 'pkcs8').key;
      assert.throws(
        () => DelegatedCredentialSet.build({ certificateChain: [cert.der], credentials: [{ ...input(algorithm), privateKey: swapped, label: `${algorithm}.cred` }], now }),
        rejectsWith('key-mismatch', new RegExp(`^${algorithm}\\.cred: the private key does not match the credential's public key .*: its key does not belong to the credential: its private part does not produce signatures the credential's public key verifies`)),
      );
    }
  });

  void it('refuses an expired credential or one for another certificate, naming it', async () => {
    assert.throws(
      () => DelegatedCredentialSet.build({ certificateChain: [cert.der], credentials: [input('ed25519')], now: new Date(now.getTime() + 2 * HOUR * 1000) }),
      rejectsWith('invalid-file', /^ed25519\.cred: delegated credential rejected \(expired\)/),
    );
    const other = await makeCertificate({ keyType: 'p256' });
    assert.throws(
      () => DelegatedCredentialSet.build({ certificateChain: [other.der], credentials: [input('ed25519')], now }),
      rejectsWith('invalid-file', /bad-signature/),
    );
  });

  void it("with expired 'keep', keeps an expired credential out of selection instead of failing", () => {
    const later = new Date(now.getTime() + 2 * HOUR * 1000);
    const set = DelegatedCredentialSet.build({ certificateChain: [cert.der], credentials: [input('ed25519')], now: later, expired: 'keep' });
    assert.equal(set.entries.length, 1);
    assert.equal(set.select({ dcSchemes: [S.ed25519], signatureSchemes: CLIENT_SIGALGS, now: later }), undefined);
    assert.equal(isServableAt(set.entries[0]!, later.getTime()), false);
  });

  void it("with expired 'keep', keeps a credential with more than 7 days left by a clock behind the issuer's, and selects it once within 7 days; 'refuse' refuses it", async () => {
    const week = await issue('ed25519', 7 * 24 * HOUR);
    const behind = new Date(now.getTime() - 5_000);
    const credentials = [{ delegatedCredential: week.delegatedCredential, privateKey: week.privateKey, label: 'week.cred' }];
    assert.throws(() => DelegatedCredentialSet.build({ certificateChain: [cert.der], credentials, now: behind }), rejectsWith('invalid-file', /^week\.cred: delegated credential rejected \(validity-too-long\)/));
    const set = DelegatedCredentialSet.build({ certificateChain: [cert.der], credentials, now: behind, expired: 'keep' });
    assert.equal(set.select({ dcSchemes: [S.ed25519], signatureSchemes: CLIENT_SIGALGS, now: behind }), undefined);
    assert.equal(set.select({ dcSchemes: [S.ed25519], signatureSchemes: CLIENT_SIGALGS, now: new Date(now.getTime() + 1000) })?.dcCertVerifyAlgorithm, S.ed25519);
  });

  void it('refuses a credential that outlives its certificate (RFC 9345 §3), naming it', async () => {
    const shortLived = await makeCertificate({ keyType: 'p256', notAfter: new Date(now.getTime() + HOUR * 1000) });
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const credential = {
      validTime: Math.floor(now.getTime() / 1000) - Math.floor(shortLived.notBefore.getTime() / 1000) + 2 * HOUR,
      dcCertVerifyAlgorithm: S.ed25519,
      spki: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })),
    };
    const algorithm = S.ecdsa_secp256r1_sha256;
    const signature = await shortLived.signer.sign(algorithm, delegatedCredentialSignedContent('server', shortLived.der, credential, algorithm));
    assert.throws(
      () =>
        DelegatedCredentialSet.build({
          certificateChain: [shortLived.der],
          credentials: [{ delegatedCredential: encodeDelegatedCredential({ credential, algorithm, signature }), privateKey, label: 'late.cred' }],
          now,
        }),
      rejectsWith('invalid-file', /^late\.cred: valid until .*, after the certificate expires .*RFC 9345 §3/),
    );
  });

  void it('is immutable', () => {
    const set = fullSet();
    assert.throws(() => (set.entries as unknown[]).push(1), TypeError);
    assert.throws(() => {
      (set as unknown as { entries: unknown }).entries = [];
    }, TypeError);
    assert.ok(Object.isFrozen(set.entries[0]));
  });
});

void describe('CredentialStore', () => {
  void it('swaps sets by one reference while a handshake keeps the set it started with', async () => {
    const cert = await makeCertificate({ keyType: 'ed25519' });
    const first = await issueDelegatedCredential({ certificate: cert.der, signer: cert.signer, dcAlgorithm: 'ed25519', validitySeconds: HOUR });
    const second = await issueDelegatedCredential({ certificate: cert.der, signer: cert.signer, dcAlgorithm: 'ed25519', validitySeconds: HOUR });
    const setOf = (i: IssuedDelegatedCredential): DelegatedCredentialSet =>
      DelegatedCredentialSet.build({ certificateChain: [cert.der], credentials: [{ delegatedCredential: i.delegatedCredential, privateKey: i.privateKey }] });
    const setA = setOf(first);
    const setB = setOf(second);
    const store = new CredentialStore(setA);

    const inFlight = store.current!; // a handshake takes the set once, at its start
    assert.equal(store.replace(setB), setA);
    const lists = { dcSchemes: [S.ed25519], signatureSchemes: [S.ed25519] };
    assert.deepEqual(inFlight.select(lists)?.encoded, first.delegatedCredential);
    assert.deepEqual(store.current!.select(lists)?.encoded, second.delegatedCredential);
  });
});

void describe('loading credentials from the operator layout', () => {
  let cert: TestCertificate;
  let files: Record<string, Uint8Array>;
  let p256Key: Uint8Array;
  let dir: string;
  const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

  before(async () => {
    cert = await makeCertificate({ keyType: 'p256' });
    files = { 'tls.crt': enc(cert.pem), 'ca.crt': enc(cert.pem), 'tls.key': enc('not for us') };
    for (const alg of ['ed25519', 'ecdsa_secp256r1_sha256'] as const) {
      const dc = await issueDelegatedCredential({ certificate: cert.der, signer: cert.signer, dcAlgorithm: alg, validitySeconds: HOUR });
      files[`${alg}.cred`] = dc.delegatedCredential;
      files[`${alg}.key`] = enc(dc.privateKeyPem);
      if (alg === 'ecdsa_secp256r1_sha256') p256Key = enc(dc.privateKeyPem);
    }
    dir = await mkdtemp(join(tmpdir(), 'dc-loader-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const load = (map: FileMap) => loadDelegatedCredentialSet([{ label: 'ns/secret', files: map }]);

  void it('builds a set from a Secret-like file map and ignores tls.key and ca.crt', () => {
    const set = load(files);
    assert.deepEqual(set.entries.map((e) => e.dcCertVerifyAlgorithm), [S.ed25519, S.ecdsa_secp256r1_sha256]);
    assert.deepEqual(set.certificateChain[0], cert.der);
  });

  void it("reads a kubelet-mounted directory through its ..data symlinks", async () => {
    const version = join(dir, '..2026_11_28_13_00_00.000000001');
    await mkdir(version);
    for (const [name, data] of Object.entries(files)) await writeFile(join(version, name), data);
    await symlink('..2026_11_28_13_00_00.000000001', join(dir, '..data'));
    for (const name of Object.keys(files)) await symlink(join('..data', name), join(dir, name));
    const set = await loadDelegatedCredentialDirectory(dir);
    assert.equal(set.entries.length, 2);
    const source = await readCredentialDirectory(dir);
    // Only the files of the layout are read; kubelet's ..data entries and ca.crt are not.
    assert.deepEqual(Object.keys(source.files).sort(), ['ecdsa_secp256r1_sha256.cred', 'ecdsa_secp256r1_sha256.key', 'ed25519.cred', 'ed25519.key', 'tls.crt', 'tls.key']);
  });

  void it('refuses what is not a regular file at once (a FIFO nobody writes would block a read for ever) and a file larger than a Secret', async () => {
    const fifoDir = await mkdtemp(join(tmpdir(), 'dc-loader-fifo-'));
    try {
      await writeFile(join(fifoDir, 'ed25519.key'), files['ed25519.key']!);
      execFileSync('mkfifo', [join(fifoDir, 'tls.crt')]);
      const started = performance.now();
      await assert.rejects(readCredentialDirectory(fifoDir), (e: unknown) => e instanceof DelegationError && /tls\.crt: cannot read: not a regular file/.test(e.message));
      assert.ok(performance.now() - started < 1000, 'refused without waiting for a writer');
      await writeFile(join(fifoDir, 'big'), new Uint8Array(2049));
      await assert.rejects(readRegularFile(join(fifoDir, 'big'), 2048), /2049 bytes, more than the 2048 a Secret can hold/);
      await symlink('big', join(fifoDir, 'link'));
      assert.equal((await readRegularFile(join(fifoDir, 'link'), 4096)).length, 2049, 'a symlink to a regular file is read');
      assert.deepEqual(await readRegularFile(join(fifoDir, 'ed25519.key')), files['ed25519.key']);
      // A pseudo-file reports size 0 and has more: refused once past the bound, not read to its end.
      await assert.rejects(readRegularFile('/proc/self/status', 100), /more than the 100 bytes a Secret can hold/);
      // procfs reads a page at a time, short before its end: read to the end, not to the first short read.
      const smaps = Buffer.from(await readRegularFile('/proc/self/smaps')).toString('latin1');
      assert.ok(smaps.length > 16_384 && smaps.endsWith('\n'), `the whole of /proc/self/smaps: ${smaps.length} bytes`);
    } finally {
      await rm(fifoDir, { recursive: true, force: true });
    }
  });

  void it('combines several dcctl output directories (dc.cred + dc.key) with a certificate given separately', async () => {
    const a = { 'dc.cred': files['ed25519.cred']!, 'dc.key': files['ed25519.key']! };
    const b = { 'dc.cred': files['ecdsa_secp256r1_sha256.cred']!, 'dc.key': files['ecdsa_secp256r1_sha256.key']! };
    const set = loadDelegatedCredentialSet([{ label: 'out/a', files: a }, { label: 'out/b', files: b }], { certificateChain: [cert.der] });
    assert.equal(set.entries.length, 2);
  });

  void it('names the file in every error', () => {
    const without = (name: string): Record<string, Uint8Array> => Object.fromEntries(Object.entries(files).filter(([k]) => k !== name));
    assert.throws(() => load(without('ed25519.key')), rejectsWith('missing-file', /^ns\/secret\/ed25519\.key: missing/));
    assert.throws(() => load(without('ed25519.cred')), rejectsWith('missing-file', /^ns\/secret\/ed25519\.cred: missing/));
    assert.throws(() => load(without('tls.crt')), rejectsWith('missing-file', /^ns\/secret: no tls\.crt/));
    assert.throws(() => load({ ...files, 'tls.crt': enc('garbage') }), rejectsWith('invalid-file', /^ns\/secret\/tls\.crt: no PEM certificate/));
    assert.throws(() => load({ ...files, 'ed25519.cred': Uint8Array.from([1, 2, 3]) }), rejectsWith('invalid-file', /^ns\/secret\/ed25519\.cred: not an encoded DelegatedCredential/));
    assert.throws(() => load({ ...files, 'ed25519.key': enc('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n') }), rejectsWith('invalid-file', /^ns\/secret\/ed25519\.key: not a PEM private key/));
    assert.throws(() => load({ ...files, 'ed25519.key': p256Key }), rejectsWith('key-mismatch', /^ns\/secret\/ed25519\.cred: the private key does not match/));
    assert.throws(
      () => load({ ...files, 'ed25519.cred': files['ecdsa_secp256r1_sha256.cred']!, 'ed25519.key': p256Key }),
      rejectsWith('invalid-file', /^ns\/secret\/ed25519\.cred: holds a ecdsa_secp256r1_sha256 credential, not ed25519/),
    );
    assert.throws(
      () => loadDelegatedCredentialSet([{ label: 'ns/secret', files }], { now: new Date(Date.now() + 2 * HOUR * 1000) }),
      rejectsWith('invalid-file', /^ns\/secret\/ecdsa_secp256r1_sha256\.cred: delegated credential rejected \(expired\)/),
    );
  });

  void it('keeps the old set when a reload fails (the store is only replaced after a successful load)', () => {
    const store = new CredentialStore(load(files));
    const before = store.current;
    try {
      store.replace(load({ ...files, 'ed25519.key': p256Key }));
    } catch {
      // a failed reload never reaches replace
    }
    assert.equal(store.current, before);
  });
});
