/**
 * Bytes our server allocates per full TLS 1.3 handshake (x25519, P-256 certificate, 32 bytes
 * echoed), in memory against our own client; the number garbage collection has to deal with
 * behind sockets (bench/results/socket-path.md). Needs --expose-gc.
 *
 *   npx tsc -p tsconfig.json
 *   node --expose-gc dist/bench/handshake-alloc.js [dist=dist] [handshakes=400]
 *   node --expose-gc dist/bench/handshake-alloc.js [dist=dist] [handshakes=400] sites   # + top allocation sites
 *   BENCH_GROUP=X25519MLKEM768 node --expose-gc dist/bench/handshake-alloc.js ...          # another key exchange group
 *   BENCH_TLS_VERSION=1.2 node --expose-gc dist/bench/handshake-alloc.js ...             # a full TLS 1.2 handshake instead
 *
 * Counting: a full GC before each handshake, then the growth of V8's used heap size (and of
 * external memory: Buffer backing stores) across each of the server's calls (constructor, feed,
 * write, poll), summed per handshake. Without a collection in between, growth is what was
 * allocated; a handshake during which the heap shrank (a scavenge) is dropped and counted. The
 * counting call's own allocation is measured with an empty call and subtracted. Deterministic up
 * to a few hundred bytes; the median over handshakes is reported.
 *
 * `sites`: the inspector's sampling heap profiler (every 128 bytes on average, objects collected
 * by GC included) over the same handshakes, keeping only samples with a server call on the stack
 * (`serverStep` below), grouped by the allocating function and its file: where to cut.
 */
import { Session } from 'node:inspector/promises';
import { getHeapStatistics } from 'node:v8';
import type * as Tls from '../src/tls/index.js';
import { asIssuer, issueCertificate } from '../src/cli/pki/dev-pki.js';
import { importFromBuild, loadAverage, median } from './tls-support.js';

type TlsModule = typeof Tls;
const [dist = 'dist', countText = '400', sitesArg] = process.argv.slice(2);
const handshakes = Number(countText);
const PAYLOAD = new Uint8Array(32);
const NO_KEYLOG = Object.assign(() => undefined, { enabled: () => false });
const gc = (globalThis as { gc?: () => void }).gc;
/** The key exchange group (a NamedGroup name): BENCH_GROUP=X25519MLKEM768 for the hybrid. */
const GROUP = process.env.BENCH_GROUP ?? 'x25519';

let heapBytes = 0;
let externalBytes = 0;
let shrank = false;
let calls = 0;

/** Runs one server call and adds what it allocated. Named: the `sites` mode finds it on the stack. */
function serverStep<T>(call: () => T): T {
  calls++;
  const a = getHeapStatistics();
  const result = call();
  const b = getHeapStatistics();
  if (b.used_heap_size < a.used_heap_size) shrank = true;
  heapBytes += b.used_heap_size - a.used_heap_size;
  externalBytes += b.external_memory - a.external_memory;
  return result;
}

function oneHandshake(tls: TlsModule, server: Tls.ServerConfig, client: Tls.ClientConfig): Tls.ServerConnection {
  const c = new tls.ClientConnection(client, { keylog: NO_KEYLOG });
  const s = serverStep(() => new tls.ServerConnection(server, { keylog: NO_KEYLOG }));
  let toServer = c.poll().output;
  let echoed = false;
  for (let round = 0; round < 8 && !echoed; round++) {
    const toClient: Uint8Array[] = [];
    for (const bytes of toServer) {
      const p = serverStep(() => s.feed(bytes));
      for (const e of p.events) if (e.type === 'error') throw e.error;
      if (p.waitFor) throw new Error('server waited');
      toClient.push(...p.output);
      if (p.events.some((e) => e.type === 'data')) {
        serverStep(() => s.write(PAYLOAD));
        toClient.push(...serverStep(() => s.poll()).output);
      }
    }
    toServer = [];
    for (const bytes of toClient) {
      const { output, events } = c.feed(bytes);
      const failed = events.find((e) => e.type === 'error');
      if (failed) throw failed.error;
      echoed ||= events.some((e) => e.type === 'data');
      // Once connected, the client sends its 32 bytes right behind its Finished.
      const extra = events.some((e) => e.type === 'handshake') ? (c.write(PAYLOAD), c.poll().output) : [];
      toServer.push(...output, ...extra);
    }
  }
  if (!echoed) throw new Error('no echo');
  return s;
}

/** A server that has sent its flight and waits for the client's Finished (its client dropped). */
function awaitingFinished(tls: TlsModule, server: Tls.ServerConfig, client: Tls.ClientConfig): Tls.ServerConnection {
  const c = new tls.ClientConnection(client, { keylog: NO_KEYLOG });
  const s = new tls.ServerConnection(server, { keylog: NO_KEYLOG });
  for (const bytes of c.poll().output) {
    const p = s.feed(bytes);
    if (p.output.length === 0 || p.events.some((e) => e.type === 'error')) throw new Error('no server flight');
  }
  return s;
}

/**
 * What `count` server connections made by `make` keep alive, per connection: the heap after a
 * full GC with them held, minus the heap after a full GC without them. This is what every
 * scavenge copies for each handshake in flight (and what an idle connection costs for its life).
 */
function retained(make: () => Tls.ServerConnection, count: number): { heap: number; external: number } {
  const held: Tls.ServerConnection[] = [];
  gc!();
  gc!();
  const before = getHeapStatistics();
  for (let i = 0; i < count; i++) held.push(make());
  gc!();
  gc!();
  const after = getHeapStatistics();
  const heap = (after.used_heap_size - before.used_heap_size) / count;
  const external = (after.external_memory - before.external_memory) / count;
  held.length = 0;
  return { heap, external };
}

interface ProfileNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  id: number;
  children: ProfileNode[];
}

/** Sampled bytes per handshake by allocating function, only under a server call. */
async function sites(run: () => void, n: number): Promise<void> {
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.startSampling', { samplingInterval: 128, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  run();
  const { profile } = (await session.post('HeapProfiler.stopSampling')) as unknown as { profile: { head: ProfileNode; samples: { nodeId: number; size: number }[] } };
  session.disconnect();
  // Each sample's site: the allocating function, and the nearest frame of our own code (src/)
  // below it, which is the one to change when the allocating function is a builtin or node's.
  const underServer = new Map<number, string>();
  const walk = (node: ProfileNode, inServer: boolean, ours: string): void => {
    const here = inServer || node.callFrame.functionName === 'serverStep';
    const file = node.callFrame.url.replace(/^.*?\/(?=src\/)/, '');
    const name = `${node.callFrame.functionName || '(anonymous)'} ${file}:${node.callFrame.lineNumber + 1}`;
    const oursHere = file.startsWith('src/') ? name : ours;
    if (here) underServer.set(node.id, oursHere === name ? name : `${name} <- ${oursHere}`);
    for (const child of node.children) walk(child, here, oursHere);
  };
  walk(profile.head, false, '');
  const bySite = new Map<string, number>();
  let total = 0;
  for (const s of profile.samples) {
    const site = underServer.get(s.nodeId);
    if (site === undefined || site.startsWith('serverStep ') || site.startsWith('getHeapStatistics')) continue;
    bySite.set(site, (bySite.get(site) ?? 0) + s.size);
    total += s.size;
  }
  console.log(`\n# sampled allocation under server calls: ${(total / n).toFixed(0)} bytes/handshake (heap objects; sampling, +-5 %)`);
  console.log('| bytes/handshake | share | allocating function (file:line in the build) <- nearest frame in src/ |');
  console.log('| ---: | ---: | --- |');
  for (const [site, bytes] of [...bySite].sort((x, y) => y[1] - x[1]).slice(0, 40)) {
    console.log(`| ${(bytes / n).toFixed(0)} | ${((100 * bytes) / total).toFixed(1)} % | ${site} |`);
  }
  const byFile = new Map<string, number>();
  for (const [site, bytes] of bySite) {
    const ours = (site.split(' <- ')[1] ?? site).replace(/^\S+ /, '').replace(/:\d+$/, '');
    byFile.set(ours, (byFile.get(ours) ?? 0) + bytes);
  }
  console.log('\n| bytes/handshake | share | nearest file in src/ |');
  console.log('| ---: | ---: | --- |');
  for (const [file, bytes] of [...byFile].sort((x, y) => y[1] - x[1])) {
    console.log(`| ${(bytes / n).toFixed(0)} | ${((100 * bytes) / total).toFixed(1)} % | ${file} |`);
  }
}

async function main(): Promise<void> {
  if (!gc) throw new Error('run with node --expose-gc');
  const tls = await importFromBuild<TlsModule>(dist, 'src/tls/index.js');
  const ca = await issueCertificate({ commonName: 'alloc bench CA', isCA: true }, 'ecdsa-p256');
  const leaf = await issueCertificate({ commonName: 'localhost', dnsNames: ['localhost'], extendedKeyUsage: ['serverAuth'] }, 'ecdsa-p256', asIssuer(ca));
  const server = new tls.ServerConfig({ certificates: [{ cert: leaf.pem, key: leaf.key.privateKeyPem }] });
  const group = tls.NamedGroup[GROUP as keyof typeof tls.NamedGroup];
  if (typeof group !== 'number') throw new Error(`BENCH_GROUP=${GROUP} is not a NamedGroup name`);
  const tls12 = process.env.BENCH_TLS_VERSION === '1.2';
  const versions = tls12 ? ({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' } as const) : {};
  const client = new tls.ClientConfig({ rejectUnauthorized: false, servername: 'localhost', groups: [group, tls.NamedGroup.secp256r1], keyShareGroups: [group], ...versions });
  for (let i = 0; i < 300; i++) oneHandshake(tls, server, client); // warm: optimised code allocates less
  // The counting call's own cost: one empty serverStep.
  const empty: number[] = [];
  for (let i = 0; i < 50; i++) {
    heapBytes = 0;
    serverStep(() => undefined);
    empty.push(heapBytes);
  }
  const overhead = median(empty);
  const heap: number[] = [];
  const external: number[] = [];
  let dropped = 0;
  for (let i = 0; i < handshakes; i++) {
    gc();
    heapBytes = 0;
    externalBytes = 0;
    shrank = false;
    calls = 0;
    oneHandshake(tls, server, client);
    if (shrank) {
      dropped++;
      continue;
    }
    heap.push(heapBytes - calls * overhead);
    external.push(externalBytes);
  }
  console.log(`# server allocation per full TLS ${tls12 ? '1.2' : '1.3'} handshake (${GROUP}, P-256), in memory; build ${dist}; ${handshakes} handshakes (${dropped} dropped: a GC ran); node ${process.version}; load ${loadAverage()}`);
  console.log(`heap bytes/handshake (median): ${median(heap).toFixed(0)} (counting overhead ${overhead} bytes per server call subtracted); external bytes/handshake (median): ${median(external).toFixed(0)}`);
  const rounds = (make: () => Tls.ServerConnection): string => {
    const r = [0, 1, 2, 3, 4].map(() => retained(make, 200));
    return `heap ${median(r.map((x) => x.heap)).toFixed(0)}, external ${median(r.map((x) => x.external)).toFixed(0)} bytes/connection (median of 5 x 200)`;
  };
  console.log(`retained by a server awaiting the client's Finished: ${rounds(() => awaitingFinished(tls, server, client))}`);
  console.log(`retained by a connected server (after the echo): ${rounds(() => oneHandshake(tls, server, client))}`);
  if (sitesArg === 'sites') await sites(() => { for (let i = 0; i < handshakes; i++) oneHandshake(tls, server, client); }, handshakes);
}

await main();
