import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { createCa, createServingCert, type KeyedCertificate } from '../../../src/pki/certs.js';
import { createWebhookServer, type WebhookServer } from '../../../src/webhook/server.js';
import type { AdmissionRequest } from '../../../src/webhook/admission-types.js';
import type { Logger } from '../../../src/webhook/serving-certs.js';
import { WebhookMetrics } from '../../../src/webhook/metrics.js';

const quiet: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

let ca: KeyedCertificate;
let server: WebhookServer;
let port: number;
let ready = true;
const metrics = new WebhookMetrics();

interface Reply {
  status: number;
  body: string;
  serial: string;
}

function call(method: string, path: string, body?: string, headers: Record<string, string> = { 'content-type': 'application/json' }, caPem = ca.certPem): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, method, path, ca: caPem, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      const serial = new X509Certificate((res.socket as TLSSocket).getPeerX509Certificate()?.raw ?? Buffer.alloc(0)).serialNumber;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), serial }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function review(uid: string, extra: Partial<AdmissionRequest> = {}): string {
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid, kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' }, operation: 'CREATE', object: {}, ...extra },
  });
}

before(async () => {
  const now = new Date();
  ca = await createCa('test CA', now);
  const serving = await createServingCert(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], now });
  server = createWebhookServer({
    host: '127.0.0.1',
    port: 0,
    material: serving,
    log: quiet,
    isReady: () => ready,
    maxBodyBytes: 64 * 1024,
    metrics,
    handler: (req) => {
      if (req.uid === 'boom') throw new Error('handler bug');
      if (req.uid === 'reject') return Promise.reject(new Error('async handler bug'));
      return Promise.resolve({
        review: { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: req.uid, allowed: true } },
        result: 'skipped', reason: 'Test', message: 'test',
      });
    },
  });
  port = await server.listen();
});

after(async () => {
  await server.close();
});

void test('a valid AdmissionReview is answered with the handler review and the request uid', async () => {
  const r = await call('POST', '/mutate?timeout=5s', review('abc'));
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.body), { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'abc', allowed: true } });
});

void test('a body that is not JSON gets a 400 that says so', async () => {
  const r = await call('POST', '/mutate', '{not json');
  assert.equal(r.status, 400);
  assert.match(r.body, /^body is not JSON/);
});

void test('JSON that is not an AdmissionReview v1 gets a 400 naming the problem', async () => {
  const r = await call('POST', '/mutate', JSON.stringify({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview' }));
  assert.equal(r.status, 400);
  assert.match(r.body, /not an AdmissionReview v1: expected apiVersion admission\.k8s\.io\/v1/);
});

void test('a body over the limit is refused with 413, declared or streamed', async () => {
  const big = JSON.stringify({ pad: 'x'.repeat(70 * 1024) });
  const declared = await call('POST', '/mutate', big);
  assert.equal(declared.status, 413);
  assert.match(declared.body, /exceeds the 65536-byte limit/);
  const streamed = await new Promise<number>((resolve, reject) => {
    const req = httpsRequest(
      { host: '127.0.0.1', port, method: 'POST', path: '/mutate', ca: ca.certPem, agent: false, headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    for (let i = 0; i < 10; i++) req.write('x'.repeat(10 * 1024));
    req.end();
  });
  assert.equal(streamed, 413);
});

void test('a GET of /mutate is a 405 and an unknown path a 404', async () => {
  assert.equal((await call('GET', '/mutate')).status, 405);
  const r = await call('GET', '/nope');
  assert.equal(r.status, 404);
  assert.match(r.body, /no route for \/nope/);
});

void test('a content type other than JSON is a 415', async () => {
  const r = await call('POST', '/mutate', review('x'), { 'content-type': 'text/plain' });
  assert.equal(r.status, 415);
});

void test('a throwing handler refuses that pod with a 500 status in the review and the server keeps serving', async () => {
  for (const uid of ['boom', 'reject']) {
    const r = await call('POST', '/mutate', review(uid));
    assert.equal(r.status, 200);
    const out = JSON.parse(r.body) as { response: { uid: string; allowed: boolean; status: { code: number; message: string } } };
    assert.equal(out.response.uid, uid);
    assert.equal(out.response.allowed, false);
    assert.equal(out.response.status.code, 500);
    assert.match(out.response.status.message, /handler bug/);
  }
  assert.equal((await call('POST', '/mutate', review('after'))).status, 200);
  assert.ok(server.stats.errors >= 2);
});

void test('/healthz is 200 and /readyz follows readiness', async () => {
  assert.equal((await call('GET', '/healthz')).status, 200);
  ready = false;
  const r = await call('GET', '/readyz');
  assert.equal(r.status, 503);
  assert.match(r.body, /not ready/);
  ready = true;
  assert.equal((await call('GET', '/readyz')).status, 200);
});

void test('a new serving certificate is served to new connections without a restart; an invalid one is refused and the old one kept', async () => {
  const before = (await call('GET', '/healthz')).serial;
  const next = await createServingCert(ca, { dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], now: new Date() });
  server.setCertificate(next);
  const after = await call('GET', '/healthz');
  assert.equal(after.status, 200);
  assert.notEqual(after.serial, before);
  assert.equal(after.serial, new X509Certificate(next.certPem).serialNumber);

  const other = await createCa('other', new Date());
  assert.throws(() => server.setCertificate({ certPem: next.certPem, keyPem: other.keyPem }));
  assert.equal((await call('GET', '/healthz')).serial, after.serial);
});

void test('answers and refusals are counted in Prometheus metrics, served on /metrics', async () => {
  await call('POST', '/mutate', review('m1'));
  await call('POST', '/mutate', '{');
  const r = await call('GET', '/metrics');
  assert.equal(r.status, 200);
  assert.match(r.body, /dc_operator_webhook_admissions_total\{result="skipped",reason="Test"\} [1-9]/);
  assert.match(r.body, /dc_operator_webhook_bad_requests_total\{status="400"\} [1-9]/);
  assert.match(r.body, /dc_operator_webhook_admission_duration_seconds_count\{result="skipped"\} [1-9]/);
});

void test('random bytes and random JSON on /mutate are answered with a status, never crash the server', async () => {
  await fc.assert(
    fc.asyncProperty(fc.oneof(fc.uint8Array({ maxLength: 256 }).map((b) => Buffer.from(b).toString('latin1')), fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v))), async (body) => {
      const r = await call('POST', '/mutate', body);
      assert.ok([200, 400].includes(r.status), `status ${r.status} for ${JSON.stringify(body)}`);
    }),
    { numRuns: 100 },
  );
  assert.equal((await call('GET', '/healthz')).status, 200);
});
