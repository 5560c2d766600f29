/**
 * What the keyless client tests put between a client and a real key server on loopback: a TCP
 * relay that can stop passing the key server's bytes on (a key server that stops answering while
 * its connection stays up: overloaded, paused, or behind a stalled network path) and pass them on
 * again, cut one connection, and refuse new ones (a replica that went away behind a Service while
 * the connections made before stay up); and the waiting and settling helpers those tests share.
 */
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';

/** Forwards bytes both ways; while held, each connection keeps the key server's bytes instead of delivering them. */
export class Relay {
  private server: Server | undefined;
  private holding = false;
  /** Per client connection, in the order they were accepted: the key server's bytes not delivered yet. */
  private readonly clients = new Map<Socket, Buffer[]>();
  /** While set, a new connection is closed as soon as it is accepted, before any byte is relayed. */
  refuseNew = false;
  /** Connections accepted, refused ones included. */
  accepted = 0;
  port = 0;

  async start(upstreamPort: number): Promise<void> {
    this.server = createServer((client) => {
      this.accepted++;
      if (this.refuseNew) {
        client.on('error', () => {});
        client.destroy();
        return;
      }
      const upstream = netConnect({ host: '127.0.0.1', port: upstreamPort });
      this.clients.set(client, []);
      client.on('close', () => {
        this.clients.delete(client);
        upstream.destroy();
      });
      upstream.on('close', () => client.destroy());
      client.on('error', () => {});
      upstream.on('error', () => {});
      client.pipe(upstream);
      upstream.on('data', (chunk: Buffer) => {
        if (this.holding) this.clients.get(client)?.push(chunk);
        else client.write(chunk);
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  /** Client connections open through the relay. */
  get connections(): number {
    return this.clients.size;
  }

  hold(): void {
    this.holding = true;
  }

  release(): void {
    this.holding = false;
    for (const [client, held] of this.clients) for (const chunk of held.splice(0)) client.write(chunk);
  }

  /** Cuts the open connection accepted `index`-th among those still open (0: the oldest), both ways. */
  cut(index: number): void {
    const client = [...this.clients.keys()][index];
    if (!client) throw new Error(`no open connection ${index} (${this.clients.size} open)`);
    client.destroy();
  }

  async close(): Promise<void> {
    for (const c of this.clients.keys()) c.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Timers alive in this process (node's own view: a leaked request timer shows here). */
export function timers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

/** Settles each promise into its value or error, so none is left unhandled while others are awaited. */
export function settled<T>(p: Promise<T>): Promise<{ ok: T } | { error: unknown }> {
  return p.then(
    (ok) => ({ ok }),
    (error: unknown) => ({ error }),
  );
}
