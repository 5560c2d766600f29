// The operator's apiserver client against a local HTTPS server with a test CA (a fake apiserver:
// unit tests only; test/integration runs the controller against a real kube-apiserver).
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { issueCertificate, KeyUsage, type IssuedCertificate } from '../../../../src/cli/pki/dev-pki.js';
import { DirectAuth } from '../../../../src/operator/apiserver/auth.js';
import { ApiClient } from '../../../../src/operator/apiserver/client.js';
import { connectApiServer, inClusterAuth } from '../../../../src/operator/apiserver/connect.js';
import { LineTooLong } from '../../../../src/operator/apiserver/json-lines.js';
import { ApiStatusError } from '../../../../src/operator/apiserver/status-error.js';
import { statusCodeOf, type WatchEventType } from '../../../../src/operator/informer.js';
import { KubeClient } from '../../../../src/operator/kube.js';
import type { KubeconfigPlaces } from '../../../../src/operator/kubeconfig.js';

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

interface Seen {
  method: string;
  url: URL;
  /** The request target as sent (path and query), and the Host header. */
  rawUrl: string;
  host: string | undefined;
  authorization: string | undefined;
  accept: string | undefined;
  clientCN: string | undefined;
  body: string;
}

let ca: IssuedCertificate;
let clientCert: IssuedCertificate;
let server: Server;
let port: number;
let handler: Handler = (_req, res) => res.end('{}');
const seen: Seen[] = [];
let connections = 0;
const dir = mkdtempSync(join(tmpdir(), 'dc-apiserver-client-'));

before(async () => {
  ca = await issueCertificate({ commonName: 'test CA', isCA: true }, 'ecdsa-p256');
  const issuer = { certificateDer: ca.der, signingKey: ca.key.keys.privateKey };
  const serving = await issueCertificate({ commonName: 'apiserver', ipAddresses: ['127.0.0.1'], dnsNames: ['kubernetes.default.svc'], extendedKeyUsage: ['serverAuth'] }, 'ecdsa-p256', issuer);
  clientCert = await issueCertificate({ commonName: 'operator', extendedKeyUsage: ['clientAuth'], keyUsage: KeyUsage.digitalSignature }, 'ecdsa-p256', issuer);
  server = createServer({ cert: serving.pem, key: serving.key.privateKeyPem, ca: ca.pem, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      seen.push({
        method: req.method ?? '',
        url: new URL(req.url ?? '/', 'https://x'),
        rawUrl: req.url ?? '',
        host: req.headers.host,
        authorization: req.headers.authorization,
        accept: req.headers.accept,
        clientCN: peer.subject?.CN as string | undefined,
        body,
      });
      handler(req, res, body);
    });
  });
  server.on('secureConnection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as AddressInfo).port;
  writeFileSync(join(dir, 'ca.crt'), ca.pem);
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

const url = (): URL => new URL(`https://127.0.0.1:${port}`);
const certClient = (): ApiClient =>
  new ApiClient(new DirectAuth(url(), { ca: Buffer.from(ca.pem), cert: Buffer.from(clientCert.pem), key: Buffer.from(clientCert.key.privateKeyPem) }, undefined, 'test'));
const json = (res: ServerResponse, status: number, body: unknown): void => {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};
const fresh = (): void => void seen.splice(0);

void describe('ApiClient requests', () => {
  void it('sends JSON with the client certificate over one keep-alive connection', async () => {
    fresh();
    handler = (req, res, body) => json(res, req.method === 'POST' ? 201 : 200, { kind: 'Secret', metadata: { name: 'x', resourceVersion: '5' }, echo: body === '' ? null : JSON.parse(body) });
    const api = certClient();
    const before = connections;
    try {
      const created = await api.post<{ echo: unknown }>('/api/v1/namespaces/a/secrets', { metadata: { name: 'x' } }, { fieldManager: 'dc-operator' });
      assert.deepEqual(created.echo, { metadata: { name: 'x' } });
      for (let i = 0; i < 5; i++) await api.get('/api/v1/namespaces/a/secrets/x');
      await api.put('/api/v1/namespaces/a/secrets/x', { metadata: { name: 'x', resourceVersion: '5' } });
      await api.patchMerge('/api/v1/namespaces/a/secrets/x', { metadata: { resourceVersion: '5', labels: { a: 'b' } } });
    } finally {
      api.destroy();
    }
    assert.equal(connections - before, 1, 'one TLS connection for 8 sequential requests');
    assert.deepEqual(seen.map((s) => s.method), ['POST', 'GET', 'GET', 'GET', 'GET', 'GET', 'PUT', 'PATCH']);
    assert.ok(seen.every((s) => s.clientCN === 'operator'));
    assert.equal(seen[0]?.url.searchParams.get('fieldManager'), 'dc-operator');
    assert.deepEqual(JSON.parse(seen[6]?.body ?? ''), { metadata: { name: 'x', resourceVersion: '5' } });
  });

  void it('sends the request target and Host a URL of the server would give (path prefix, query encoding, undefined values left out)', async () => {
    fresh();
    handler = (_req, res) => json(res, 200, {});
    const server = new URL(`https://127.0.0.1:${port}/prefix//`);
    const api = new ApiClient(new DirectAuth(server, { ca: Buffer.from(ca.pem), cert: Buffer.from(clientCert.pem), key: Buffer.from(clientCert.key.privateKeyPem) }, undefined, 'test'));
    const query = { labelSelector: 'dc-operator.io/owner in (a b, c),x!=y', fieldSelector: 'metadata.name=web-tls', limit: 500, continue: undefined, allowWatchBookmarks: true, odd: "*'()~!é&=+%" };
    const path = '/api/v1/namespaces/a%2Fb/secrets';
    try {
      await api.get(path, query);
      await api.get(path);
      await api.get(path, { continue: undefined });
    } finally {
      api.destroy();
    }
    // What the client sent before it stopped building a URL per request.
    const expected = new URL(server.href);
    expected.pathname = expected.pathname.replace(/\/+$/, '') + path;
    for (const [k, v] of Object.entries(query)) if (v !== undefined) expected.searchParams.set(k, String(v));
    assert.deepEqual(seen.map((s) => s.rawUrl), [`${expected.pathname}${expected.search}`, `/prefix${path}`, `/prefix${path}`]);
    assert.ok(seen.every((s) => s.host === `127.0.0.1:${port}`));
  });

  void it('maps a Status refusal to an ApiStatusError that statusCodeOf reads; KubeClient.getSecret reads 404 as absent', async () => {
    handler = (_req, res) => json(res, 409, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Conflict', code: 409, message: 'the object has been modified' });
    const api = certClient();
    try {
      const err = await api.put('/api/v1/namespaces/a/secrets/x', {}).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof ApiStatusError);
      assert.equal(statusCodeOf(err), 409);
      assert.equal(err.reason, 'Conflict');
      assert.match(err.message, /PUT \/api\/v1\/namespaces\/a\/secrets\/x: 409 Conflict: the object has been modified/);
      handler = (_req, res) => json(res, 404, { kind: 'Status', reason: 'NotFound', code: 404, message: 'secrets "x" not found' });
      assert.equal(await new KubeClient(api).getSecret('a', 'x'), undefined);
    } finally {
      api.destroy();
    }
  });

  void it('refuses a response over its byte cap, and one that is not JSON', async () => {
    handler = (_req, res) => json(res, 200, { big: 'x'.repeat(5000) });
    const api = new ApiClient(certClient().auth, { maxResponseBytes: 1000 });
    try {
      await assert.rejects(api.get('/big'), /response larger than 1000 bytes: refused/);
      handler = (_req, res) => res.end('not json');
      await assert.rejects(api.get('/garbage'), /the response is not JSON/);
    } finally {
      api.destroy();
    }
  });

  void it('gives up on a server that never answers, after its deadline', async () => {
    handler = () => undefined; // never answers
    const api = new ApiClient(certClient().auth, { requestTimeoutMs: 200 });
    try {
      await assert.rejects(api.get('/slow'), /no complete response within 200 ms/);
    } finally {
      api.destroy();
    }
  });

  // The leader's renewal is cut at renewDeadline this way (leader.ts), long before the 60 s deadline.
  void it('fails a request at once when its AbortSignal is aborted, before or while it waits', async () => {
    handler = () => undefined; // never answers
    const api = new ApiClient(certClient().auth, { requestTimeoutMs: 30_000 });
    try {
      const abort = new AbortController();
      const started = Date.now();
      const pending = api.request('PUT', '/apis/coordination.k8s.io/v1/namespaces/ns/leases/l', { body: {}, signal: abort.signal });
      setTimeout(() => abort.abort(), 100);
      await assert.rejects(pending, /PUT \/apis\/coordination.k8s.io\/v1\/namespaces\/ns\/leases\/l: aborted/);
      assert.ok(Date.now() - started < 5_000, 'not the request deadline');
      await assert.rejects(api.request('GET', '/x', { signal: AbortSignal.abort() }), /GET \/x: aborted/);
    } finally {
      api.destroy();
    }
  });

  void it('pages through a list with limit and continue (KubeClient sources)', async () => {
    fresh();
    const pages: Record<string, { items: unknown[]; metadata: Record<string, string> }> = {
      '': { items: [{ metadata: { name: 'a' } }, { metadata: { name: 'b' } }], metadata: { resourceVersion: '10', continue: 'p2' } },
      p2: { items: [{ metadata: { name: 'c' } }], metadata: { resourceVersion: '11', continue: 'p3' } },
      p3: { items: [], metadata: { resourceVersion: '12', continue: '' } },
    };
    handler = (req, res) => json(res, 200, pages[new URL(req.url ?? '', 'https://x').searchParams.get('continue') ?? ''] ?? {});
    const counted: string[] = [];
    const api = certClient();
    try {
      const list = await new KubeClient(api, (verb, resource) => counted.push(`${verb} ${resource}`)).secretSource('ns', { labelSelector: 'a=b' }).list();
      assert.deepEqual(list.items.map((s) => s.metadata?.name), ['a', 'b', 'c']);
      assert.equal(list.resourceVersion, '12');
    } finally {
      api.destroy();
    }
    assert.deepEqual(seen.map((s) => [s.url.pathname, s.url.searchParams.get('limit'), s.url.searchParams.get('continue'), s.url.searchParams.get('labelSelector')]), [
      ['/api/v1/namespaces/ns/secrets', '500', null, 'a=b'],
      ['/api/v1/namespaces/ns/secrets', '500', 'p2', 'a=b'],
      ['/api/v1/namespaces/ns/secrets', '500', 'p3', 'a=b'],
    ]);
    assert.deepEqual(counted, ['list secrets', 'list secrets', 'list secrets']);
  });

  void it('asks for the metadata forms it was made to accept (lists and watches)', async () => {
    fresh();
    handler = (req, res) => json(res, 200, { items: null, metadata: { resourceVersion: '3' } });
    const api = certClient().accepting({ list: 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1', object: 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1' });
    try {
      assert.deepEqual(await new KubeClient(api).secretSource(undefined, {}).list(), { items: [], resourceVersion: '3' });
    } finally {
      api.destroy();
    }
    assert.equal(seen[0]?.accept, 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1');
    assert.equal(seen[0]?.url.pathname, '/api/v1/secrets');
  });
});

interface WatchRun {
  events: [WatchEventType, unknown][];
  error: unknown;
  doneCalls: number;
}

async function watchWith(write: (res: ServerResponse) => void, opts: { maxWatchLineBytes?: number; idleMs?: number } = {}): Promise<WatchRun> {
  handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    write(res);
  };
  const api = new ApiClient(certClient().auth, { ...(opts.maxWatchLineBytes ? { maxWatchLineBytes: opts.maxWatchLineBytes } : {}) });
  const run: WatchRun = { events: [], error: undefined, doneCalls: 0 };
  try {
    await new Promise<void>((resolve) => {
      void api.watch<unknown>(
        '/api/v1/namespaces/a/secrets',
        { resourceVersion: '7' },
        (type, object) => run.events.push([type, object]),
        (err) => {
          run.doneCalls++;
          run.error = err;
          resolve();
        },
        opts.idleMs,
      );
    });
    await new Promise((r) => setTimeout(r, 20)); // a second done() would come now
  } finally {
    api.destroy();
  }
  return run;
}

void describe('ApiClient watches', () => {
  void it('delivers events split across writes, bookmarks and ERROR Status objects, then ends cleanly', async () => {
    fresh();
    const run = await watchWith((res) => {
      res.write('{"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"8"}}}\n{"type":"MODI');
      setTimeout(() => {
        res.write('FIED","object":{"metadata":{"name":"a","resourceVersion":"9"}}}\n');
        res.write('{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"10"}}}\n');
        res.end('{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired"}}\n');
      }, 10);
    });
    assert.deepEqual(
      run.events.map(([t, o]) => [t, (o as { metadata?: { resourceVersion?: string }; code?: number }).metadata?.resourceVersion ?? (o as { code?: number }).code]),
      [['ADDED', '8'], ['MODIFIED', '9'], ['BOOKMARK', '10'], ['ERROR', 410]],
    );
    assert.equal(run.error, null);
    assert.equal(run.doneCalls, 1);
    assert.equal(seen[0]?.url.searchParams.get('watch'), 'true');
    assert.equal(seen[0]?.url.searchParams.get('resourceVersion'), '7');
  });

  void it('refuses an event over the cap and closes the watch, keeping the events before it', async () => {
    const run = await watchWith((res) => {
      res.write('{"type":"ADDED","object":{"metadata":{"name":"a"}}}\n');
      res.write(`{"type":"ADDED","object":{"pad":"${'x'.repeat(300)}`);
      res.write('x'.repeat(300)); // no newline yet: refused before it is whole
    }, { maxWatchLineBytes: 256 });
    assert.equal(run.events.length, 1);
    assert.ok(run.error instanceof LineTooLong, String(run.error));
    assert.equal(run.doneCalls, 1);
  });

  void it('a refused watch (410 Gone as an HTTP status) is an ApiStatusError the informer relists on', async () => {
    handler = (_req, res) => json(res, 410, { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version' });
    const api = certClient();
    const err = await new Promise<unknown>((resolve) => void api.watch('/api/v1/secrets', {}, () => undefined, resolve));
    api.destroy();
    assert.ok(err instanceof ApiStatusError);
    assert.equal(statusCodeOf(err), 410);
  });

  void it('an event that is not JSON, or has no type and object, ends the watch with an error', async () => {
    for (const line of ['not json\n', '{"type":"ADDED"}\n']) {
      const run = await watchWith((res) => res.write(line));
      assert.match(String(run.error), /WatchDecodeError/);
      assert.equal(run.doneCalls, 1);
    }
  });

  void it('a silent watch is given up after its idle limit; abort() ends it once', async () => {
    const run = await watchWith(() => undefined, { idleMs: 150 });
    assert.match(String(run.error), /nothing received for 150 ms/);
    handler = (_req, res) => res.writeHead(200).flushHeaders();
    const api = certClient();
    const calls: unknown[] = [];
    const handle = await api.watch('/api/v1/secrets', {}, () => undefined, (err) => calls.push(err));
    await new Promise((r) => setTimeout(r, 50));
    handle.abort();
    handle.abort();
    await new Promise((r) => setTimeout(r, 20));
    api.destroy();
    assert.equal(calls.length, 1);
    assert.match(String(calls[0]), /aborted/);
  });
});

void describe('credentials', () => {
  const places = (env: Record<string, string>, files: string[]): KubeconfigPlaces => ({ env, home: undefined, exists: (p) => files.includes(p) });

  void it('a kubeconfig tokenFile is re-read when it rotates (in-cluster the same: the projected token)', async () => {
    fresh();
    const tokenPath = join(dir, 'token');
    writeFileSync(tokenPath, 'first\n');
    let now = 1_000_000;
    const auth = inClusterAuth({ KUBERNETES_SERVICE_HOST: '127.0.0.1', KUBERNETES_SERVICE_PORT: String(port) }, dir, () => undefined, () => now);
    const api = new ApiClient(auth);
    handler = (_req, res) => json(res, 200, {});
    try {
      await api.get('/a');
      writeFileSync(tokenPath, 'second\n');
      now += 30_000;
      await api.get('/b'); // within the minute: the token read before
      now += 31_000;
      await api.get('/c');
      writeFileSync(tokenPath, ''); // a failed re-read keeps the last token
      now += 61_000;
      await api.get('/d');
    } finally {
      api.destroy();
    }
    assert.deepEqual(seen.map((s) => s.authorization), ['Bearer first', 'Bearer first', 'Bearer second', 'Bearer second']);
    assert.equal(auth.server.href, `https://127.0.0.1:${port}/`);
  });

  void it('a kubeconfig file with a token and the CA file: our client, no client-node', async () => {
    fresh();
    const file = join(dir, 'token-kubeconfig');
    writeFileSync(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        `- name: c\n  cluster:\n    server: https://127.0.0.1:${port}\n    certificate-authority: ca.crt`,
        'users:',
        '- name: u\n  user:\n    token: from-kubeconfig',
        'contexts:',
        '- name: x\n  context: {cluster: c, user: u}',
        'current-context: x',
      ].join('\n'),
    );
    const connection = await connectApiServer({ places: places({ KUBECONFIG: file }, [file]) });
    handler = (_req, res) => json(res, 200, {});
    try {
      await connection.client.get('/x');
    } finally {
      connection.client.destroy();
    }
    assert.equal(connection.clientNodeFor, undefined);
    assert.match(connection.client.auth.describe, /context x, https:\/\/127\.0\.0\.1:\d+, token$/);
    assert.equal(seen[0]?.authorization, 'Bearer from-kubeconfig');
  });

  void it('a kubeconfig with an exec plugin: client-node authenticates (loaded then), requests still ours', async () => {
    fresh();
    const file = join(dir, 'exec-kubeconfig');
    const credential = JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: 'from-exec' } });
    writeFileSync(
      file,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'c', cluster: { server: `https://127.0.0.1:${port}`, 'certificate-authority-data': Buffer.from(ca.pem).toString('base64') } }],
        users: [{ name: 'u', user: { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: ['-e', `process.stdout.write(${JSON.stringify(credential)})`], interactiveMode: 'Never' } } }],
        contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
        'current-context': 'x',
      }),
    );
    const connection = await connectApiServer({ kubeconfig: file, places: places({}, [file]) });
    handler = (_req, res) => json(res, 200, {});
    const before = connections;
    try {
      await connection.client.get('/one');
      await connection.client.get('/two');
    } finally {
      connection.client.destroy();
    }
    assert.deepEqual(connection.clientNodeFor, ['an exec credential plugin (users[].user.exec)']);
    assert.match(connection.client.auth.describe, /@kubernetes\/client-node authentication/);
    assert.deepEqual(seen.map((s) => s.authorization), ['Bearer from-exec', 'Bearer from-exec']);
    assert.equal(connections - before, 1, 'client-node agents pooled: one connection for both');
  });
});
