/**
 * Native AEAD context creation (src/tls/native/aead.ts `create`: a cipher context with its key
 * expanded) of two builds, side by side in one process: `count` contexts per build per round,
 * builds alternating round by round; medians of us per context and of the per-round ratios. A
 * TLS 1.3 handshake creates four (a reader and a writer for the handshake keys, then for the
 * application keys), whether full or resumed.
 *
 *   npx tsc -p tsconfig.json && node scripts/build-native.mjs && taskset -c 1 node dist/bench/aead-create-ab.js <before-dist> [after-dist=dist] [count=20000] [rounds=9]
 */
import type { nativeAead as NativeAeadLoader } from '../src/tls/native/aead.js';
import { abArguments, importFromBuild, loadAverage, median } from './tls-support.js';

const { before, after, count, rounds } = abArguments('node dist/bench/aead-create-ab.js <before-dist> [after-dist=dist] [count=20000] [rounds=9]', 20_000, 9);
type AeadModule = { readonly nativeAead: typeof NativeAeadLoader };
const builds = await Promise.all(
  [before, after].map(async (d) => {
    const aead = (await importFromBuild<AeadModule>(d, 'src/tls/native/aead.js')).nativeAead();
    if (!aead) throw new Error(`${d}: the native AEAD is not built or not loaded`);
    return aead;
  }),
);

const key16 = new Uint8Array(16).fill(7);
const key32 = new Uint8Array(32).fill(7);
const iv = new Uint8Array(12).fill(9);
const algorithms = [
  ['AES-128-GCM', 1, key16],
  ['AES-256-GCM', 2, key32],
  ['ChaCha20-Poly1305', 3, key32],
] as const;

console.log(`# native AEAD create, us/context, ${count} x ${rounds} rounds per build, alternating; node ${process.version}; load average ${loadAverage()}`);
console.log(`# before: ${before}  after: ${after}`);
console.log('| algorithm | before (median) | after (median) | after/before (median of per-round ratios) |');
console.log('| --- | ---: | ---: | ---: |');
for (const [name, id, key] of algorithms) {
  const us: number[][] = [[], []];
  const ratios: number[] = [];
  for (let r = -1; r < rounds; r++) {
    const perBuild = builds.map((aead) => {
      const t = process.hrtime.bigint();
      for (let i = 0; i < count; i++) aead.create(id, (i & 1) === 0, key, iv);
      return Number(process.hrtime.bigint() - t) / count / 1000;
    });
    if (r < 0) continue; // warm-up round
    perBuild.forEach((v, i) => us[i]!.push(v));
    ratios.push(perBuild[1]! / perBuild[0]!);
  }
  console.log(`| ${name} | ${median(us[0]!).toFixed(2)} | ${median(us[1]!).toFixed(2)} | ${median(ratios).toFixed(3)}x |`);
}
console.log(`# load average after ${loadAverage()}`);
