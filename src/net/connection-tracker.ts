/**
 * The open connections of a listener: the total cap, the cap per source address, and the
 * graceful drain. Used by the sidecar and the key server. A connection is admitted as soon as it
 * is accepted, before anything is read from it (so a client that never speaks still holds its
 * slot, and is counted against its source), and released when its socket closes.
 */
import type { Socket } from 'node:net';

/** Why a connection was not admitted; the values are metric labels. */
export type Refusal = 'limit' | 'source-limit' | 'draining';

/**
 * The source a connection is counted against: its remote IP, with an IPv4-mapped IPv6 address
 * (`::ffff:10.0.0.1`, what a dual-stack listener reports) written as the IPv4 address so that
 * one client is one source whichever way it arrived.
 */
export function sourceAddress(socket: Socket): string {
  const address = socket.remoteAddress ?? 'unknown';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

export class ConnectionTracker {
  /** Open connections, each with what to call when it closes. */
  private readonly sockets = new Map<Socket, (() => void) | undefined>();
  /**
   * Open connections per source (a source is removed when its last connection closes), kept
   * only while the per-source limit can be reached: below `perSourceLimit` connections in all,
   * no source can have that many, so nothing is counted and no connection's address is asked
   * for (a getpeername(2) and a string per connection; bench/results/sidecar-perf.md section 11).
   * Built from the open connections when the total reaches the limit, dropped when it falls
   * under half of it (so a rebuild, one address per open connection, comes at most once per
   * `perSourceLimit / 2` admissions).
   */
  private bySource: Map<string, number> | undefined;
  /** The one 'close' listener of every admitted socket (`this` is the socket): no closure per connection. */
  private readonly released: (this: Socket) => void;
  private draining = false;
  private emptied: (() => void) | undefined;
  /** Connections cutAll destroyed: a drain counts them as cut, not finished. */
  private cutByForce = 0;

  /**
   * @param limit open connections at most
   * @param perSourceLimit open connections from one source address at most (0: no such limit)
   */
  constructor(
    readonly limit: number,
    readonly perSourceLimit = 0,
  ) {
    const release = (socket: Socket): void => this.release(socket);
    this.released = function (this: Socket) {
      release(this);
    };
  }

  get size(): number {
    return this.sockets.size;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Open connections from `source` (as `sourceAddress` writes it). */
  openFrom(source: string): number {
    if (this.bySource) return this.bySource.get(source) ?? 0;
    let n = 0;
    for (const s of this.sockets.keys()) if (sourceAddress(s) === source) n++;
    return n;
  }

  /** 'admitted', or why not; an admitted socket is released on its 'close'. */
  admit(socket: Socket, onRelease?: () => void): 'admitted' | Refusal {
    if (this.draining) return 'draining';
    if (this.sockets.size >= this.limit) return 'limit';
    if (this.perSourceLimit > 0 && (this.bySource !== undefined || this.sockets.size >= this.perSourceLimit)) {
      const counts = (this.bySource ??= this.countBySource());
      const source = sourceAddress(socket);
      const fromSource = counts.get(source) ?? 0;
      if (fromSource >= this.perSourceLimit) return 'source-limit';
      counts.set(source, fromSource + 1);
    }
    this.sockets.set(socket, onRelease);
    socket.on('close', this.released);
    return 'admitted';
  }

  /** `socket` closed: its slot, its source's count, its release callback. */
  private release(socket: Socket): void {
    const onRelease = this.sockets.get(socket);
    if (!this.sockets.delete(socket)) return;
    if (this.bySource) {
      if (this.sockets.size < this.perSourceLimit / 2) this.bySource = undefined;
      else {
        // The address was read (and kept by node) when the socket was counted.
        const source = sourceAddress(socket);
        const left = (this.bySource.get(source) ?? 1) - 1;
        if (left > 0) this.bySource.set(source, left);
        else this.bySource.delete(source);
      }
    }
    onRelease?.();
    if (this.sockets.size === 0) this.emptied?.();
  }

  private countBySource(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const s of this.sockets.keys()) {
      const source = sourceAddress(s);
      counts.set(source, (counts.get(source) ?? 0) + 1);
    }
    return counts;
  }

  /**
   * Destroys every open connection now and returns how many: a drain under way then ends at
   * once (the sidecar's answer to a second stop signal).
   */
  cutAll(): number {
    const open = this.sockets.size;
    this.cutByForce += open;
    for (const s of this.sockets.keys()) s.destroy();
    return open;
  }

  /**
   * Stops admitting, waits for open connections to finish up to `deadline`, then destroys the
   * rest. Resolves with how many finished by themselves and how many were cut.
   */
  async drain(deadline: Date): Promise<{ finished: number; cut: number }> {
    this.draining = true;
    const initial = this.sockets.size;
    const forcedBefore = this.cutByForce;
    if (initial > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline.getTime() - Date.now()));
        this.emptied = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.emptied = undefined;
    const atDeadline = this.sockets.size;
    for (const s of this.sockets.keys()) s.destroy();
    const cut = Math.min(initial, atDeadline + this.cutByForce - forcedBefore);
    return { finished: initial - cut, cut };
  }
}
