#!/usr/bin/env node
// Issue 19: the operator's CPU per apiserver request in its own client (src/operator/apiserver),
// two builds alternating in one process, against an HTTPS server in a child process (its CPU is
// not counted). Each request is shaped like an issuance's two writes: a PUT of a ~3.4 KB
// DelegatedCredential status and a POST of a ~3 KB Secret with a fieldManager query, each
// answered with a ~3.4 KB JSON object. 4 requests in flight, as the operator's workers, over the
// client's keep-alive pool. Each DIR holds a dist/ (e.g. `cp -r dist /tmp/before` before a change).
//   node bench/scripts/operator-apiclient-ab.mjs DIR_A DIR_B [requests per round=4000] [rounds=8]
import { Buffer } from 'node:buffer';
import { fork } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';

if (process.argv[2] === '--serve') {
  const { createServer } = await import('node:https');
  const { key, crt } = JSON.parse(process.argv[3]);
  const answer = JSON.stringify({ apiVersion: 'dc-operator.io/v1alpha1', kind: 'DelegatedCredential', metadata: { name: 'dc-00001', namespace: 'bench', resourceVersion: '123456', uid: 'a'.repeat(36) }, status: { pad: 'x'.repeat(3200) } });
  const server = createServer({ key, cert: crt, keepAliveTimeout: 60_000 }, (req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(req.method === 'POST' ? 201 : 200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(answer) });
      res.end(answer);
    });
  });
  server.listen(0, '127.0.0.1', () => process.send?.(server.address().port));
} else {
  const [dirA, dirB, N = '4000', ROUNDS = '8'] = process.argv.slice(2);
  if (!dirA || !dirB) {
    console.error('usage: node bench/scripts/operator-apiclient-ab.mjs DIR_A DIR_B [requests per round] [rounds]');
    process.exit(2);
  }
  const fx = await import(`${dirB}/dist/test/integration/operator-fixtures.js`);
  const cert = fx.dcctlCertificate();
  const child = fork(fileURLToPath(import.meta.url), ['--serve', JSON.stringify(cert)]);
  const port = await new Promise((resolve) => child.once('message', resolve));
  const status = { conditions: Array.from({ length: 4 }, (_, i) => ({ type: `T${i}`, status: 'True', reason: 'Issued', message: 'm'.repeat(200), lastTransitionTime: '2026-12-05T20:00:00Z', observedGeneration: 1 })), pad: 'p'.repeat(2200) };
  const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'dc-00001-out', namespace: 'bench', labels: { 'dc-operator.io/managed': 'true' } }, type: 'Opaque', data: { bundle: 'b'.repeat(2800) } };
  const builds = {};
  for (const [name, dir] of [['A', dirA], ['B', dirB]]) {
    const { ApiClient } = await import(`${dir}/dist/src/operator/apiserver/client.js`);
    const { DirectAuth } = await import(`${dir}/dist/src/operator/apiserver/auth.js`);
    const api = new ApiClient(new DirectAuth(new URL(`https://127.0.0.1:${port}`), { insecureSkipTlsVerify: true }, { value: 't'.repeat(900) }, 'bench'));
    let i = 0;
    builds[name] = () =>
      i++ % 2 === 0
        ? api.put('/apis/dc-operator.io/v1alpha1/namespaces/bench/delegatedcredentials/dc-00001/status', { apiVersion: 'dc-operator.io/v1alpha1', kind: 'DelegatedCredential', metadata: { name: 'dc-00001', namespace: 'bench', resourceVersion: '123455' }, status })
        : api.post('/api/v1/namespaces/bench/secrets', secret, { fieldManager: 'dc-operator' });
  }
  const cpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  const run = async (fn, n) => {
    let next = 0;
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (next++ < n) await fn();
    }));
  };
  for (const fn of Object.values(builds)) await run(fn, 500); // connections, JIT
  const res = { A: [], B: [] };
  const load = [loadavg()[0]];
  for (let r = 0; r < Number(ROUNDS); r++) {
    for (const name of r % 2 ? ['B', 'A'] : ['A', 'B']) {
      const c0 = cpu();
      await run(builds[name], Number(N));
      res[name].push(((cpu() - c0) / Number(N)) * 1000);
    }
  }
  load.push(loadavg()[0]);
  child.kill();
  const med = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
  for (const k of ['A', 'B']) console.log(k, 'client CPU µs per request: median', med(res[k]).toFixed(1), 'rounds', res[k].map((x) => x.toFixed(1)).join(' '));
  console.log('ratio B/A', (med(res.B) / med(res.A)).toFixed(3), 'load', load.map((l) => l.toFixed(2)).join(' → '));
  process.exit(0);
}
