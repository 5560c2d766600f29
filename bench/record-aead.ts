/**
 * The record path's AEAD alone, in one process, no sockets: sealing and opening TLS 1.3 records
 * through RecordSealer/RecordOpener with the native AEAD (src/tls/native) vs node:crypto,
 * alternating round by round. CPU microseconds per record (user + system of this process,
 * garbage collection included), per record size.
 *
 *   npx tsc -p tsconfig.json && node scripts/build-native.mjs && node dist/bench/record-aead.js [rounds=5] [MiB per round=64]
 *
 * Each round seals MiB of records of the given size and opens them again with a peer opener
 * (records are kept for one batch of 64 at a time, as a socket would queue them). The first round
 * of each path is a warm-up and not counted.
 */
import { CipherSuite, ContentType } from '../src/tls/constants.js';
import { RecordOpener, RecordSealer } from '../src/tls/record.js';
import { nativeAead, type NativeAead } from '../src/tls/native/aead.js';
import { suiteParams } from '../src/tls/suites.js';
import { fmt, loadAverage, median } from './tls-support.js';

const [rounds = 5, mib = 64] = process.argv.slice(2).map(Number);
const native = nativeAead();
if (!native) {
  // Not an error for `make bench`: without a C compiler there is only one path to measure.
  console.log('# record AEAD: the native AEAD is not built (node scripts/build-native.mjs) or DC_TLS_AEAD=node is set; nothing to compare');
  process.exit(0);
}

const SIZES = [16384, 4096, 512, 64];
const SUITES = [CipherSuite.TLS_AES_128_GCM_SHA256, CipherSuite.TLS_CHACHA20_POLY1305_SHA256];

function once(suiteId: number, size: number, aead: NativeAead | null): number {
  const suite = suiteParams(suiteId)!;
  const secret = Buffer.alloc(suite.hashLength, 3);
  const sealer = new RecordSealer(suite, secret, aead);
  const opener = new RecordOpener(suite, secret, aead);
  const content = Buffer.alloc(size, 0x61);
  const records = Math.max(64, Math.floor((mib << 20) / size / 64) * 64);
  const batch: Uint8Array[] = [];
  const wire = Buffer.allocUnsafe(64 * (size + 5 + 1 + 16));
  const t0 = process.cpuUsage();
  let opened = 0;
  for (let i = 0; i < records; i += 64) {
    batch.length = 0;
    for (let k = 0; k < 64; k++) sealer.sealInto(batch, ContentType.application_data, content);
    // The pieces (node:crypto: header, ciphertext, tag; native: runs of records) go into one
    // reused receive buffer, as a socket read would deliver them, and are opened from there.
    let length = 0;
    for (const piece of batch) {
      wire.set(piece, length);
      length += piece.length;
    }
    for (let at = 0; at < length; ) {
      const end = at + 5 + ((wire[at + 3]! << 8) | wire[at + 4]!);
      opened += opener.openIn(wire, at, end).content.length;
      at = end;
    }
  }
  const t = process.cpuUsage(t0);
  if (opened !== records * size) throw new Error('records did not round-trip');
  return (t.user + t.system) / records;
}

console.log(`# record AEAD in process (seal + open per record), ${rounds} rounds x ${mib} MiB after one warm-up round; node ${process.version}; load average ${loadAverage()}`);
console.log('| suite | record bytes | native us/record (median) | node:crypto us/record (median) | node:crypto / native |');
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const suiteId of SUITES) {
  for (const size of SIZES) {
    const r = { native: [] as number[], pure: [] as number[] };
    for (let i = 0; i <= rounds; i++) {
      const order = i % 2 === 0 ? ([native, null] as const) : ([null, native] as const);
      for (const a of order) {
        const us = once(suiteId, size, a);
        if (i > 0) (a ? r.native : r.pure).push(us);
      }
    }
    const n = median(r.native);
    const p = median(r.pure);
    console.log(`| ${suiteParams(suiteId)!.name} | ${size} | ${n.toFixed(2)} | ${p.toFixed(2)} | ${fmt(p / n, 2)}x |`);
  }
}
