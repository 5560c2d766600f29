/**
 * The node:crypto calls of one server handshake, each way we could make them, timed in a bare
 * loop: which API is cheapest for the x25519 share, the CertificateVerify signature and a small
 * AES-GCM seal (records, tickets). Decides the choices in src/tls/key-exchange.ts, signer.ts and
 * session.ts; results in bench/results/handshake.md.
 *
 *   npx tsc -p tsconfig.json && taskset -c 1 node dist/bench/handshake-crypto-calls.js [iterations=3000] [rounds=3]
 */
import * as c from 'node:crypto';

const [iterations = 3000, rounds = 3] = process.argv.slice(2).map(Number);

const peerJwk = (c.generateKeyPairSync as unknown as (t: 'x25519', o: { publicKeyEncoding: { format: 'jwk' } }) => { publicKey: { x: string } })('x25519', { publicKeyEncoding: { format: 'jwk' } }).publicKey.x;
const peerRaw = Buffer.from(peerJwk, 'base64url');
const basePoint = Buffer.alloc(32);
basePoint[0] = 9;
/** node:crypto's raw key input (Node 24), typed loosely: @types/node lags behind. */
const raw = (key: Buffer, format: 'raw-public' | 'raw-private'): never => ({ key, format, asymmetricKeyType: 'x25519' }) as never;
const baseKey = c.createPublicKey(raw(basePoint, 'raw-public'));
const generate = c.generateKeyPairSync as unknown as (t: 'x25519', o: { publicKeyEncoding: { format: string } }) => { publicKey: unknown; privateKey: c.KeyObject };
const { privateKey: p256 } = c.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const toSign = c.randomBytes(130);
const aesKey = c.randomBytes(32);
const aesKeyObject = c.createSecretKey(aesKey);
const iv = c.randomBytes(12);
const plain = c.randomBytes(100);
const seal = (key: Buffer | c.KeyObject): Buffer => {
  const x = c.createCipheriv('aes-256-gcm', key, iv);
  const out = x.update(plain);
  x.final();
  return Buffer.concat([out, x.getAuthTag()]);
};

const cases: Record<string, () => unknown> = {
  'x25519: keygen (JWK public) + JWK import of the peer + diffieHellman (today)': () => {
    const { privateKey } = generate('x25519', { publicKeyEncoding: { format: 'jwk' } });
    return c.diffieHellman({ privateKey, publicKey: c.createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: peerJwk }, format: 'jwk' }) });
  },
  'x25519: keygen (raw public) + raw import + diffieHellman': () => {
    const { privateKey } = generate('x25519', { publicKeyEncoding: { format: 'raw-public' } });
    return c.diffieHellman({ privateKey, publicKey: c.createPublicKey(raw(peerRaw, 'raw-public')) });
  },
  'x25519: random scalar (raw import) + diffieHellman with the base point + diffieHellman': () => {
    const privateKey = c.createPrivateKey(raw(c.randomBytes(32), 'raw-private'));
    c.diffieHellman({ privateKey, publicKey: baseKey });
    return c.diffieHellman({ privateKey, publicKey: c.createPublicKey(raw(peerRaw, 'raw-public')) });
  },
  'ECDSA P-256 sign: crypto.sign with { key, dsaEncoding } (today)': () => c.sign('sha256', toSign, { key: p256, dsaEncoding: 'der' }),
  'ECDSA P-256 sign: crypto.sign with the KeyObject': () => c.sign('sha256', toSign, p256),
  'ECDSA P-256 sign: createSign().update().sign()': () => c.createSign('sha256').update(toSign).sign(p256),
  'AES-256-GCM seal of 100 bytes, raw key (today)': () => seal(aesKey),
  'AES-256-GCM seal of 100 bytes, secret KeyObject': () => seal(aesKeyObject),
};

console.log(`# node:crypto calls of a handshake, ${iterations} iterations x ${rounds} rounds (CPU us per call, median of rounds); node ${process.version}`);
console.log('| call | us (median) | all rounds |');
console.log('| --- | ---: | --- |');
const results = new Map<string, number[]>(Object.keys(cases).map((k) => [k, []]));
for (let r = 0; r < rounds; r++) {
  for (const [name, f] of Object.entries(cases)) {
    for (let i = 0; i < 300; i++) f();
    const t = process.cpuUsage();
    for (let i = 0; i < iterations; i++) f();
    const d = process.cpuUsage(t);
    results.get(name)!.push((d.user + d.system) / iterations);
  }
}
for (const [name, us] of results) {
  const sorted = [...us].sort((a, b) => a - b);
  console.log(`| ${name} | ${sorted[sorted.length >> 1]!.toFixed(1)} | ${us.map((u) => u.toFixed(1)).join(', ')} |`);
}
