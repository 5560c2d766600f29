/**
 * What the sidecar saves per connection by handing the ClientHello it decoded while peeking
 * (routing) to ServerConnection: one `decodeClientHello` of the body, against the byte
 * comparison ServerConnection makes before it trusts the handed-over decoding.
 *
 *   npx tsc -p tsconfig.json && taskset -c 1 node dist/bench/sidecar-client-hello.js [calls=20000] [rounds=7]
 *
 * The ClientHellos are real node:tls ones (x25519 only, and the default X25519MLKEM768 share),
 * captured on a loopback socket. Thread CPU per call, the two alternating round by round.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import * as tls from 'node:tls';
import { decodeClientHello } from '../src/tls/messages/client-hello.js';
import { fmt, loadAverage, median, threadCpuUs } from './tls-support.js';

/** The first ClientHello body (no record or handshake header) a node:tls client sends with `options`. */
async function captureClientHello(options: tls.ConnectionOptions): Promise<Buffer> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = tls.connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', servername: 'localhost', ...options });
  client.on('error', () => undefined);
  const [socket] = (await once(server, 'connection')) as [Socket];
  let data = Buffer.alloc(0);
  while (data.length < 9 || data.length < 5 + data.readUInt16BE(3)) data = Buffer.concat([data, ((await once(socket, 'data')) as [Buffer])[0]]);
  client.destroy();
  socket.destroy();
  server.close();
  const length = data.readUIntBE(6, 3);
  return data.subarray(9, 9 + length);
}

function timeCalls(calls: number, f: () => unknown): number {
  const start = threadCpuUs();
  for (let i = 0; i < calls; i++) f();
  return (threadCpuUs() - start) / calls;
}

const [calls = 20000, rounds = 7] = process.argv.slice(2).map(Number);
console.log(`# ClientHello decode vs byte comparison, ${calls} calls x ${rounds} rounds, thread CPU; node ${process.version}; load average ${loadAverage()}`);
console.log('| ClientHello | body bytes | decodeClientHello µs (median) | Buffer.compare µs (median) | saved per connection µs |');
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const [name, options] of [
  ['node:tls, x25519 only', { ecdhCurve: 'X25519' }],
  ['node:tls, default groups (X25519MLKEM768 share)', {}],
] as const) {
  const body = await captureClientHello(options);
  const copy = Buffer.from(body);
  const decode: number[] = [];
  const compare: number[] = [];
  timeCalls(calls, () => decodeClientHello(body));
  timeCalls(calls, () => Buffer.compare(copy, body));
  for (let r = 0; r < rounds; r++) {
    decode.push(timeCalls(calls, () => decodeClientHello(body)));
    compare.push(timeCalls(calls, () => Buffer.compare(copy, body)));
  }
  console.log(`| ${name} | ${body.length} | ${fmt(median(decode), 2)} | ${fmt(median(compare), 3)} | ${fmt(median(decode) - median(compare), 2)} |`);
}
console.log(`load average after ${loadAverage()}`);
