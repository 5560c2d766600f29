// What one cached output Secret (or DelegatedCredential) costs the operator's heap, for the cache
// form of a given build: N output Secrets as the apiserver returns them (one P-256 credential
// each, one certificate), deserialized as client-node does for our create's response, or N
// DelegatedCredentials with the status of an issuance as the custom objects API returns them,
// passed through that build's informer transform and kept in a Map; heap used after a full GC,
// per object.
//
//   node --expose-gc bench/scripts/operator-cache-memory.mjs DIST_DIR [N] [secret|dc]
import { randomUUID } from 'node:crypto';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ObjectSerializer } from '@kubernetes/client-node/dist/gen/models/ObjectSerializer.js';

const dist = resolve(process.argv[2] ?? 'dist');
const N = Number(process.argv[3] ?? 5000);
const KIND = process.argv[4] ?? 'secret';
const load = (p) => import(pathToFileURL(join(dist, p)).href);
const form = await load('src/operator/cache-form.js');
const { buildOutputSecret } = await load('src/operator/output-secret.js');
const { tlsCrypto } = await load('src/operator/crypto.js');
const { InMemoryKeySigner } = await load('src/signer/index.js');
const { dcctlCertificate } = await load('test/integration/operator-fixtures.js');

const cert = dcctlCertificate();
const certificate = tlsCrypto.readCertificate(cert.crt, 'bench');
const signer = InMemoryKeySigner.fromPem(cert.key, 'bench');
const { desiredStatus } = await load('src/operator/status.js');
const pool = new form.StringPool();
const transform = KIND === 'dc' ? form.cachedResource(pool) : form.cachedOutputSecret(pool);

async function one(i) {
  return KIND === 'dc' ? dcOf(i) : secretOf(i);
}

function dcOf(i) {
  const now = new Date();
  const dc = { apiVersion: 'dc-operator.io/v1alpha1', kind: 'DelegatedCredential',
    metadata: { name: `dc-${i}`, namespace: 'bench', uid: randomUUID(), resourceVersion: String(200000 + i), generation: 1, creationTimestamp: now.toISOString().replace(/\.\d+Z$/, 'Z') },
    spec: { certificateSecretRef: { name: 'cert' }, secretName: `dc-${i}-out`, algorithms: ['ecdsa_secp256r1_sha256'], validity: '24h', fallback: 'None' } };
  const notAfter = new Date(now.getTime() + 86400_000);
  dc.status = desiredStatus(dc, { trigger: { reason: 'SecretMissing', message: `the output Secret dc-${i}-out does not exist` }, credentials: [{ algorithm: 'ecdsa_secp256r1_sha256', notAfter, publicKeyFingerprint: randomUUID().replace(/-/g, '').repeat(2) }],
    signer: 'tls.key of Secret cert', renewalTime: new Date(now.getTime() + 57600_000), issuedAt: now, fallback: { value: 'None', condition: { type: 'FallbackReady', status: 'True', reason: 'NoFallback', message: 'fallback None: clients without Delegated Credentials support are not served' } } }, now);
  dc.metadata.managedFields = [{ manager: 'dc-operator', operation: 'Update', apiVersion: 'dc-operator.io/v1alpha1', time: dc.metadata.creationTimestamp, fieldsType: 'FieldsV1', subresource: 'status', fieldsV1: { 'f:status': { '.': {}, 'f:conditions': {} } } }];
  // The custom objects API returns plain parsed JSON.
  return JSON.parse(JSON.stringify(dc));
}

async function secretOf(i) {
  const issued = await tlsCrypto.issue({ certificate, signer, algorithm: 'ecdsa_secp256r1_sha256', validitySeconds: 86400, now: new Date() });
  const dc = { apiVersion: 'dc-operator.io/v1alpha1', kind: 'DelegatedCredential', metadata: { name: `dc-${i}`, namespace: 'bench', uid: randomUUID() }, spec: { secretName: `dc-${i}-out`, algorithms: ['ecdsa_secp256r1_sha256'], validity: '24h', certificateSecretRef: { name: 'cert' } } };
  const s = buildOutputSecret({ dc, fallback: { fallback: 'None' }, chainPem: certificate.chainPem, certificateFingerprint: certificate.fingerprint, credentials: [issued], issuedAt: new Date() });
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  Object.assign(s.metadata, { uid: randomUUID(), resourceVersion: String(100000 + i), creationTimestamp: now,
    managedFields: [{ manager: 'dc-operator', operation: 'Update', apiVersion: 'v1', time: now, fieldsType: 'FieldsV1', fieldsV1: { 'f:data': { '.': {}, 'f:fallback': {}, 'f:tls.crt': {} }, 'f:metadata': { 'f:annotations': { '.': {} } } } }] });
  // The response's JSON, parsed and deserialized as client-node does (a fresh copy of every string).
  return ObjectSerializer.deserialize(JSON.parse(JSON.stringify(s)), 'V1Secret');
}

const heap = () => { globalThis.gc(); globalThis.gc(); return process.memoryUsage().heapUsed; };
await one(-1); // modules and code warmed before the baseline
const before = heap();
const raw = [];
for (let i = 0; i < N; i++) raw.push(await one(i));
const store = new Map();
const t0 = process.cpuUsage();
for (const s of raw) store.set(s.metadata.name, transform(s));
const cpu = process.cpuUsage(t0);
raw.length = 0;
const after = heap();
// The raw objects are dropped: what remains is what the transform kept.
console.log(JSON.stringify({ dist, N, kind: KIND, bytesPerObject: Math.round((after - before) / N), heapMiB: +(after / 2 ** 20).toFixed(1), transformCpuUsPerObject: +((cpu.user + cpu.system) / N).toFixed(1) }));
