/**
 * The sidecar's own CPU per keyless signature (issue 19 "Keyless pull"), isolated from the rest of
 * the handshake: the sidecar's KeylessSigner (as keyless-fallback.ts makes it) asking a real
 * `dc-operator keyserver` process for P-256 CertificateVerify signatures over the pooled mTLS
 * connection, `lanes` requests in flight, with each verification policy side by side:
 *
 *   node dist/bench/sidecar-keyless-signer.js [signatures per block=2000] [rounds=7] [lanes=16] [N...=1 32]
 *
 * N = 1 verifies every returned signature (the sidecar before this change), N = 32 one in 32
 * (--keyless-verify-one-in's default). Blocks of each N alternate round by round in this one
 * process, pinned to core 1 (the key server to core 0); CPU is this process's user+system over
 * the block (process.cpuUsage), divided by the signatures; medians of the rounds. With
 * BENCH_COMPARE_BUILD=DIR also the signer of another build's dist, over that build's KeylessClient,
 * verifying as the first N does.
 */
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KeylessClient } from '../src/keyless/client.js';
import { KeylessSigner } from '../src/signer/keyless.js';
import { SignatureScheme } from '../src/tls/constants.js';
import { certificateVerifyContent } from '../src/tls/signature-schemes.js';
import { makeKeylessPki } from '../test/unit/keyless/pki.js';
import { makePki } from '../test/unit/sidecar/fixtures.js';
import { startKeyServerProcess } from './keyless-support.js';
import { canPin, fmt, loadAverage, median } from './tls-support.js';

const [perBlock = 2000, rounds = 7, lanes = 16, ...policies] = process.argv.slice(2).map(Number);
const POLICIES = policies.length > 0 ? policies : [1, 32];
const COMPARED = process.env['BENCH_COMPARE_BUILD'];

interface SignerLike {
  sign(scheme: number, message: Uint8Array): Promise<Uint8Array> | Uint8Array;
}

async function block(signer: SignerLike, n: number): Promise<number> {
  const message = certificateVerifyContent('server', new Uint8Array(32).fill(7));
  let left = n;
  const cpu = process.cpuUsage();
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (left > 0) {
        left--;
        await signer.sign(SignatureScheme.ecdsa_secp256r1_sha256, message);
      }
    }),
  );
  const used = process.cpuUsage(cpu);
  return (used.user + used.system) / n;
}

async function main(): Promise<void> {
  const pin = canPin();
  if (pin) spawnSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)]);
  const pki = await makePki('ecdsa-p256');
  const mtls = makeKeylessPki(['p256']);
  await writeFile(join(mtls.keysDir, 'leaf.pem'), pki.leaf.key.privateKeyPem);
  const keyServer = await startKeyServerProcess(mtls);
  if (pin) spawnSync('taskset', ['-a', '-p', '-c', '0', String(keyServer.child.pid)]);
  const client = new KeylessClient({ address: `127.0.0.1:${keyServer.port}`, ca: mtls.ca, cert: mtls.client.cert, key: mtls.client.key });
  try {
    const common = { client, address: '', ca: '', clientCert: '', clientKey: '', certificate: pki.leaf.pem, timeoutMs: 2000 };
    const signers = new Map<string, SignerLike>(POLICIES.map((n) => [`verify 1 in ${n}`, new KeylessSigner({ ...common, verifyOneIn: n })]));
    if (COMPARED) {
      const { KeylessSigner: Old } = (await import(join(COMPARED, 'src', 'signer', 'keyless.js'))) as { KeylessSigner: new (o: unknown) => SignerLike };
      const { KeylessClient: OldClient } = (await import(join(COMPARED, 'src', 'keyless', 'client.js'))) as { KeylessClient: new (o: unknown) => unknown };
      const oldClient = new OldClient({ address: `127.0.0.1:${keyServer.port}`, ca: mtls.ca, cert: mtls.client.cert, key: mtls.client.key });
      // Verifying as the first policy does, so the two builds' clients are what differs.
      signers.set(`build ${COMPARED}, verify 1 in ${POLICIES[0]}`, new Old({ ...common, client: oldClient, verifyOneIn: POLICIES[0] }));
    }
    console.log(`# keyless signer CPU per signature: ${rounds} rounds x ${perBlock} P-256 signatures per signer, ${lanes} in flight, ${pin ? 'this process on core 1, key server on core 0' : 'not pinned'}; node ${process.version}; load average ${loadAverage()}`);
    for (const s of signers.values()) await block(s, 200); // warm-up, connection set-up
    const results = new Map<string, number[]>([...signers.keys()].map((k) => [k, []]));
    for (let r = 0; r < rounds; r++) {
      for (const [name, s] of signers) results.get(name)!.push(await block(s, perBlock));
    }
    const base = median(results.values().next().value!);
    console.log('| signer | sidecar CPU µs per signature (median) | all rounds | vs first row |');
    console.log('| --- | ---: | --- | ---: |');
    for (const [name, us] of results) console.log(`| ${name} | ${fmt(median(us))} | ${us.map((u) => fmt(u)).join(', ')} | ${(median(us) / base).toFixed(2)}x |`);
    console.log(`# load average after ${loadAverage()}`);
  } finally {
    await client.close();
    await keyServer.stop();
    mtls.cleanup();
  }
  process.exit(0);
}

await main();
