#!/usr/bin/env node
// Issue 19: CPU per issuance through the operator's crypto port (tlsCrypto.issue: key pair,
// certificate-key signature, its check) of two builds, alternating; each DIR holds a dist/ (e.g.
// `cp -r dist /tmp/before` before a change). 4 issuances in flight, as the operator's workers.
//   node bench/scripts/operator-issue-ab.mjs DIR_A DIR_B [issuances per round=2000] [rounds=6]
import { loadavg } from 'node:os';
const [dirA, dirB, N = '2000', ROUNDS = '6'] = process.argv.slice(2);
const fx = await import(`${dirB}/dist/test/integration/operator-fixtures.js`);
const cert = fx.dcctlCertificate();
const builds = {};
for (const [name, dir] of [['A', dirA], ['B', dirB]]) {
  const { tlsCrypto } = await import(`${dir}/dist/src/operator/crypto.js`);
  const facts = tlsCrypto.readCertificate(cert.crt, 'tls.crt');
  const signer = tlsCrypto.keySigner(cert.key, 'tls.key', facts);
  builds[name] = () => tlsCrypto.issue({ certificate: facts, signer, algorithm: 'ecdsa_secp256r1_sha256', validitySeconds: 86400, now: new Date() });
}
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
const res = { A: [], B: [] };
for (let r = 0; r < Number(ROUNDS); r++) {
  for (const name of r % 2 ? ['B', 'A'] : ['A', 'B']) {
    const fn = builds[name]; const c0 = cpu(); let next = 0;
    await Promise.all(Array.from({ length: 4 }, async () => { while (next++ < Number(N)) await fn(); }));
    res[name].push((cpu() - c0) / Number(N) * 1000);
  }
}
const med = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
for (const k of ['A', 'B']) console.log(k, 'cpu µs per issuance: median', med(res[k]).toFixed(0), 'runs', res[k].map((x) => x.toFixed(0)).join(' '));
console.log('ratio B/A', (med(res.B) / med(res.A)).toFixed(2), 'load', loadavg()[0].toFixed(2));
