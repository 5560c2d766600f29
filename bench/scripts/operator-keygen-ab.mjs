#!/usr/bin/env node
// Issue 19: CPU per P-256 key pair, obtained as (SPKI DER, PKCS#8) the ways node:crypto allows,
// 4 in flight (the operator's workers), the variants alternating in each round.
//   node bench/scripts/operator-keygen-ab.mjs [keys per round=2000] [rounds=5]
import { generateKeyPair, generateKeyPairSync, createECDH } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
const gen = promisify(generateKeyPair);
const variants = {
  async keyobjects() { const { publicKey, privateKey } = await gen('ec', { namedCurve: 'P-256' });
    return [publicKey.export({ type: 'spki', format: 'der' }), privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), publicKey.export({ type: 'spki', format: 'der' })]; },
  async encodedAsync() { const { publicKey, privateKey } = await gen('ec', { namedCurve: 'P-256', publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
    return [publicKey, privateKey]; },
  async encodedSync() { const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256', publicKeyEncoding: { type: 'spki', format: 'der' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
    return [publicKey, privateKey]; },
  async keyobjectsSync() { const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    return [publicKey.export({ type: 'spki', format: 'der' }), privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()]; },
  async ecdhRaw() { const e = createECDH('prime256v1'); e.generateKeys(); return [e.getPublicKey(), e.getPrivateKey()]; },
};
const N = Number(process.argv[2] ?? 2000), ROUNDS = Number(process.argv[3] ?? 5);
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
const res = {};
for (let r = 0; r < ROUNDS; r++) {
  for (const [name, fn] of (r % 2 ? Object.entries(variants).reverse() : Object.entries(variants))) {
    const c0 = cpu(), t0 = performance.now();
    let next = 0;
    await Promise.all(Array.from({ length: 4 }, async () => { while (next++ < N) await fn(); }));
    (res[name] ??= []).push([(cpu() - c0) / N * 1000, (performance.now() - t0) / N * 1000]);
  }
}
const med = (a) => a.sort((x, y) => x - y)[a.length >> 1];
for (const [k, v] of Object.entries(res)) console.log(k.padEnd(16), 'cpu µs/key', med(v.map((x) => x[0])).toFixed(1), ' wall µs/key', med(v.map((x) => x[1])).toFixed(1));
console.log('load', (await import('node:os')).loadavg()[0].toFixed(2));
