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
  private readonly sockets = new Set<Socket>();
  /** Open connections per source; a source is removed when its last connection closes. */
  private readonly bySource = new Map<string, number>();
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
  ) {}

  get size(): number {
    return this.sockets.size;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /** Open connections from `source` (as `sourceAddress` writes it). */
  openFrom(source: string): number {
    return this.bySource.get(source) ?? 0;
  }

  /** 'admitted', or why not; an admitted socket is released on its 'close'. */
  admit(socket: Socket, onRelease?: () => void): 'admitted' | Refusal {
    if (this.draining) return 'draining';
    if (this.sockets.size >= this.limit) return 'limit';
    const source = sourceAddress(socket);
    const fromSource = this.bySource.get(source) ?? 0;
    if (this.perSourceLimit > 0 && fromSource >= this.perSourceLimit) return 'source-limit';
    this.sockets.add(socket);
    this.bySource.set(source, fromSource + 1);
    socket.once('close', () => {
      this.sockets.delete(socket);
      const left = (this.bySource.get(source) ?? 1) - 1;
      if (left > 0) this.bySource.set(source, left);
      else this.bySource.delete(source);
      onRelease?.();
      if (this.sockets.size === 0) this.emptied?.();
    });
    return 'admitted';
  }

  /**
   * Destroys every open connection now and returns how many: a drain under way then ends at
   * once (the sidecar's answer to a second stop signal).
   */
  cutAll(): number {
    const open = this.sockets.size;
    this.cutByForce += open;
    for (const s of this.sockets) s.destroy();
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
    for (const s of this.sockets) s.destroy();
    const cut = Math.min(initial, atDeadline + this.cutByForce - forcedBefore);
    return { finished: initial - cut, cut };
  }
}
