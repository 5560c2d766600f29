#!/usr/bin/env node
// Issue 19: the apiserver's CPU per write for variants of the operator's two writes per issuance
// (the DelegatedCredential status PUT and the output Secret create), measured alternating against
// one running control plane (e.g. `make control-plane-up`: STATE_DIR = .dev/control-plane).
// Per round and variant: N fresh DelegatedCredentials are created (not measured), then their
// first status write (empty -> the status a reconcile writes, from a real operator run) and one
// output-shaped Secret create each, 4 in flight over one keep-alive pool, are timed by the
// apiserver's CPU from /proc (utime + stime). One JSON watch of the DelegatedCredentials and one
// label-selected watch of the Secrets stay open throughout, as the operator's informers.
//   node bench/scripts/operator-write-variants-ab.mjs STATE_DIR [N=1500] [rounds=6] [variants=base,ignore,nospec]
// Variants: base = what main sends; ignore = ?fieldValidation=Ignore on both writes;
// nospec = ignore, and the status PUT's body without spec (the status subresource resets it).
// PROFILE_DIR=DIR PROFILE_SECONDS=S: a Go CPU profile of the apiserver (it must run with
// --profiling=true) of S seconds starts before each variant's timed writes (S longer than
// them), saved as DIR/r<round>-<variant>.pprof.
import { Buffer } from 'node:buffer';
import { readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

const [stateDir, N = '1500', ROUNDS = '6', VARIANTS = 'base,ignore,nospec'] = process.argv.slice(2);
const state = JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8'));
const pki = join(stateDir, 'pki');
const agent = new Agent({ keepAlive: true, maxSockets: 8, ca: readFileSync(join(pki, 'ca.crt')), cert: readFileSync(join(pki, 'admin.crt')), key: readFileSync(join(pki, 'admin.key')) });
const server = new URL(state.server);

function call(method, path, body) {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = request({ agent, host: server.hostname, port: server.port, method, path, headers: { accept: 'application/json', ...(data ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } : {}) } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if ((res.statusCode ?? 0) >= 300) reject(new Error(`${method} ${path}: ${res.statusCode} ${text.slice(0, 300)}`));
        else resolve(text ? JSON.parse(text) : undefined);
      });
    });
    req.setTimeout(60_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(data);
  });
}

function watch(path) {
  const req = request({ agent: new Agent({ ca: agent.options.ca, cert: agent.options.cert, key: agent.options.key }), host: server.hostname, port: server.port, path, headers: { accept: 'application/json' } }, (res) => res.on('data', () => {}));
  req.on('error', () => {});
  req.end();
  return req;
}

function fetchProfile(file, seconds) {
  return new Promise((resolve, reject) => {
    const req = request({ agent, host: server.hostname, port: server.port, path: `/debug/pprof/profile?seconds=${seconds}` }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => { writeFileSync(file, Buffer.concat(chunks)); resolve(); });
    });
    req.on('error', reject);
    req.end();
  });
}

const apiserverCpuMs = () => {
  const f = readFileSync(`/proc/${state.apiserver.pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
};

async function pool(count, fn, inFlight) {
  let next = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => { while (next < count) await fn(next++); }));
}

const ns = `ab-${Date.now().toString(36)}`;
await call('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
const dcPath = `/apis/dc-operator.io/v1alpha1/namespaces/${ns}/delegatedcredentials`;
const watches = [watch(`${dcPath}?watch=true`), watch(`/api/v1/namespaces/${ns}/secrets?watch=true&labelSelector=app.kubernetes.io%2Fmanaged-by%3Ddc-operator`)];

// The status of the benchmark's objects after their first issuance (bench/operator-scale, no key server).
function statusFor(i) {
  const t = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const until = new Date(Date.now() + 86400_000).toISOString().replace(/\.\d+Z$/, 'Z');
  const renewal = new Date(Date.now() + 57600_000 + i * 997).toISOString().replace(/\.\d+Z$/, 'Z');
  const fallbackMsg = 'no in-cluster key server is configured (controller flag --keyserver-address): clients without delegated-credential support get a handshake failure. Install the key server, or set spec.fallback None to say DC clients only';
  return {
    conditions: [
      { lastTransitionTime: t, message: 'signing with tls.key of Secret web-tls', observedGeneration: 1, reason: 'SignerReady', status: 'True', type: 'SignerReady' },
      { lastTransitionTime: t, message: fallbackMsg, observedGeneration: 1, reason: 'NoKeyServer', status: 'False', type: 'FallbackReady' },
      { lastTransitionTime: t, message: `credentials for ecdsa_secp256r1_sha256 valid until ${until}, renewal at ${renewal}; fallback Keyless not ready (NoKeyServer): ${fallbackMsg}`, observedGeneration: 1, reason: 'Issued', status: 'True', type: 'Ready' },
      { lastTransitionTime: t, message: 'the credentials are current', observedGeneration: 1, reason: 'UpToDate', status: 'False', type: 'Issuing' },
    ],
    credentials: [{ algorithm: 'ecdsa_secp256r1_sha256', notAfter: until, publicKeyFingerprint: randomBytes(32).toString('hex') }],
    fallback: 'Keyless', lastIssuedTime: t, notAfter: until, observedGeneration: 1, renewalTime: renewal,
  };
}

function secretFor(name, owner) {
  const b64 = (n) => randomBytes(Math.ceil(n * 3 / 4)).toString('base64').slice(0, n);
  return {
    apiVersion: 'v1', kind: 'Secret', type: 'dc-operator.io/delegated-credential',
    metadata: {
      name: `${name}-out`, namespace: ns,
      labels: { 'app.kubernetes.io/managed-by': 'dc-operator', 'dc-operator.io/delegated-credential': name },
      annotations: { 'dc-operator.io/certificate-fingerprint': randomBytes(32).toString('hex'), 'dc-operator.io/issued-at': new Date().toISOString(), 'dc-operator.io/spec-hash': randomBytes(16).toString('hex') },
      ownerReferences: [{ apiVersion: 'dc-operator.io/v1alpha1', kind: 'DelegatedCredential', name, uid: owner.metadata.uid, controller: true, blockOwnerDeletion: true }],
    },
    data: { 'ecdsa_secp256r1_sha256.cred': b64(236), 'ecdsa_secp256r1_sha256.key': b64(324), fallback: 'S2V5bGVzcw==', 'tls.crt': b64(956) },
  };
}

const variants = VARIANTS.split(',');
const res = Object.fromEntries(variants.map((v) => [v, { status: [], create: [] }]));
const count = Number(N);
for (let r = 0; r < Number(ROUNDS); r++) {
  const order = r % 2 ? [...variants].reverse() : variants;
  for (const v of order) {
    const prefix = `r${r}${v}`;
    const dcs = new Array(count);
    await pool(count, async (i) => {
      const name = `${prefix}-${i}`;
      dcs[i] = await call('POST', dcPath, { apiVersion: 'dc-operator.io/v1alpha1', kind: 'DelegatedCredential', metadata: { name, namespace: ns },
        spec: { algorithms: ['ecdsa_secp256r1_sha256'], certificateSecretRef: { name: 'web-tls' }, fallback: 'Keyless', secretName: `${name}-out`, validity: '24h' } });
    }, 32);
    for (const dc of dcs) delete dc.metadata.managedFields;
    const query = `?fieldManager=dc-operator${v === 'base' ? '' : '&fieldValidation=Ignore'}`;
    await sleep(1000);
    const profile = process.env.PROFILE_DIR ? fetchProfile(join(process.env.PROFILE_DIR, `r${r}-${v}.pprof`), Number(process.env.PROFILE_SECONDS ?? 30)) : undefined;
    let c0 = apiserverCpuMs();
    await pool(count, (i) => call('POST', `/api/v1/namespaces/${ns}/secrets${query}`, secretFor(dcs[i].metadata.name, dcs[i])), 4);
    res[v].create.push((apiserverCpuMs() - c0) / count);
    c0 = apiserverCpuMs();
    await pool(count, (i) => {
      const dc = dcs[i];
      const body = v === 'nospec' ? { apiVersion: dc.apiVersion, kind: dc.kind, metadata: dc.metadata, status: statusFor(i) } : { ...dc, status: statusFor(i) };
      return call('PUT', `${dcPath}/${dc.metadata.name}/status${query}`, body);
    }, 4);
    res[v].status.push((apiserverCpuMs() - c0) / count);
    await profile;
    console.error(`round ${r} ${v}: create ${res[v].create.at(-1).toFixed(3)} status ${res[v].status.at(-1).toFixed(3)} apiserver CPU-ms per write, load ${loadavg()[0].toFixed(2)}`);
  }
}
const med = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
for (const v of variants) {
  console.log(`${v}: secret create ${med(res[v].create).toFixed(3)} ms (${res[v].create.map((x) => x.toFixed(2)).join(' ')}); status PUT ${med(res[v].status).toFixed(3)} ms (${res[v].status.map((x) => x.toFixed(2)).join(' ')})`);
}
for (const w of watches) w.destroy();
await call('DELETE', `/api/v1/namespaces/${ns}`);
agent.destroy();
