/**
 * The write of a small output to a socket, the two ways src/tls/socket.ts can make it: the
 * record pieces corked (one writev of N buffers) or joined into one Buffer (one write), on a
 * real loopback connection, alternating round by round in one process.
 *
 *   npx tsc -p tsconfig.json && taskset -c 1 node dist/bench/socket-write.js [writes=3000] [rounds=7]
 *
 * Shapes: a TLS 1.3 server flight with a P-256 certificate as our record layer emits it
 * (ServerHello record, then one protected record as header, ciphertext and tag: 4 pieces, ~1 KB)
 * and a 32-byte application write (3 pieces: header, ciphertext, tag). Each write waits for the
 * peer to have read it, as a handshake waits for the client's answer. CPU per write: this
 * process's (both ends, user + system; the same peer work in both variants), median of rounds.
 */
import { once } from 'node:events';
import { createServer, connect, type Socket, type AddressInfo } from 'node:net';
import { fmt, loadAverage, median } from './tls-support.js';

type Variant = 'writev' | 'joined';

const SHAPES: Readonly<Record<string, readonly number[]>> = {
  'server flight (4 pieces)': [127, 5, 781, 16],
  '32-byte write (3 pieces)': [5, 33, 16],
};

function send(socket: Socket, pieces: readonly Uint8Array[], variant: Variant, done: () => void): void {
  if (variant === 'joined') {
    let total = 0;
    for (const p of pieces) total += p.length;
    socket.write(Buffer.concat(pieces as Uint8Array[], total), done);
    return;
  }
  socket.cork();
  for (let i = 0; i < pieces.length - 1; i++) socket.write(pieces[i]!);
  socket.write(pieces[pieces.length - 1]!, done);
  socket.uncork();
}

async function round(writer: Socket, reader: Socket, pieces: readonly Uint8Array[], total: number, variant: Variant, writes: number): Promise<number> {
  let got = 0;
  let wake: (() => void) | undefined;
  const onData = (d: Buffer): void => {
    got += d.length;
    if (got >= total) {
      got -= total;
      wake?.();
    }
  };
  reader.on('data', onData);
  const cpu = process.cpuUsage();
  for (let i = 0; i < writes; i++) {
    const arrived = new Promise<void>((res) => (wake = res));
    send(writer, pieces, variant, () => undefined);
    await arrived;
  }
  const used = process.cpuUsage(cpu);
  reader.off('data', onData);
  return (used.user + used.system) / writes;
}

async function main(): Promise<void> {
  const [writes = 3000, rounds = 7] = process.argv.slice(2).map(Number);
  const server = createServer({ noDelay: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', noDelay: true });
  const [accepted] = (await once(server, 'connection')) as [Socket];
  accepted.setNoDelay(true);
  console.log(`# one small output written to a loopback socket, corked writev vs one joined write; ${writes} writes x ${rounds} rounds, alternating; node ${process.version}; load average ${loadAverage()}`);
  console.log('| shape | variant | CPU µs per write (median) | all rounds |');
  console.log('| --- | --- | ---: | --- |');
  const summary: string[] = [];
  for (const [shape, sizes] of Object.entries(SHAPES)) {
    const pieces = sizes.map((n) => Buffer.alloc(n, 0x17));
    const total = sizes.reduce((a, b) => a + b, 0);
    const us: Record<Variant, number[]> = { writev: [], joined: [] };
    await round(accepted, client, pieces, total, 'writev', writes); // warm-up of both paths
    await round(accepted, client, pieces, total, 'joined', writes);
    for (let r = 0; r < rounds; r++) {
      for (const v of (r % 2 === 0 ? ['writev', 'joined'] : ['joined', 'writev']) as Variant[]) us[v].push(await round(accepted, client, pieces, total, v, writes));
    }
    for (const v of ['writev', 'joined'] as Variant[]) console.log(`| ${shape} | ${v} | ${fmt(median(us[v]), 2)} | ${us[v].map((x) => fmt(x, 2)).join(', ')} |`);
    const ratios = us.joined.map((j, i) => j / us.writev[i]!);
    summary.push(`${shape}: joined / writev ${fmt(median(ratios), 3)}x (median of per-round ratios), ${fmt(median(us.joined) - median(us.writev), 2)} µs per write`);
  }
  console.log('');
  for (const s of summary) console.log(s);
  console.log(`load average after ${loadAverage()}`);
  client.destroy();
  accepted.destroy();
  server.close();
}

await main();
