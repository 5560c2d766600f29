/**
 * Signing on worker threads, so one key server uses several cores. The main thread keeps TLS,
 * framing and key lookup; a job carries the SKI, opcode and payload, plus the private KeyObject
 * the first time a worker sees that key (KeyObjects are cloneable into workers), so a reloaded key
 * set reaches the workers without any broadcast: a new SigningKey object is simply sent again.
 */
import { Worker } from 'node:worker_threads';
import type { KeyObject } from 'node:crypto';
import { KeylessError } from './errors.js';
import type { SigningKey } from './keystore.js';
import { ErrorCode } from './protocol.js';

export interface WorkerJob {
  readonly id: number;
  readonly skiHex: string;
  readonly opcode: number;
  readonly payload: Uint8Array;
  readonly key?: KeyObject;
}

/** Control messages to a worker: keep only these keys; or say how many keys you hold. */
export type WorkerControl = { readonly retain: readonly string[] } | { readonly countKeys: number };

export type WorkerResult =
  | { readonly id: number; readonly ok: true; readonly signature: Uint8Array }
  | { readonly id: number; readonly ok: false; readonly code: number; readonly message: string }
  | { readonly countKeys: number; readonly held: number };

interface PoolWorker {
  readonly worker: Worker;
  sent: WeakSet<SigningKey>;
  readonly pending: Map<number, { resolve: (sig: Uint8Array) => void; reject: (err: Error) => void }>;
  readonly counts: Map<number, (held: number) => void>;
}

export class SigningPool {
  private readonly workers: PoolWorker[];
  private nextId = 0;
  private closed = false;

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`signing pool size must be >= 1, got ${size}`);
    this.workers = Array.from({ length: size }, () => this.spawn());
  }

  private spawn(): PoolWorker {
    const worker = new Worker(new URL('./sign-worker.js', import.meta.url));
    const entry: PoolWorker = { worker, sent: new WeakSet(), pending: new Map(), counts: new Map() };
    worker.on('message', (result: WorkerResult) => {
      if ('countKeys' in result) {
        entry.counts.get(result.countKeys)?.(result.held);
        entry.counts.delete(result.countKeys);
        return;
      }
      const waiter = entry.pending.get(result.id);
      if (!waiter) return;
      entry.pending.delete(result.id);
      if (result.ok) waiter.resolve(new Uint8Array(result.signature));
      else waiter.reject(new KeylessError(result.code, result.message));
    });
    const failAll = (err: Error): void => {
      for (const [, w] of entry.pending) w.reject(new KeylessError(ErrorCode.internalError, `signing worker failed: ${err.message}`));
      entry.pending.clear();
      const i = this.workers.indexOf(entry);
      if (i >= 0 && !this.closed) this.workers[i] = this.spawn(); // replace the dead worker
    };
    worker.on('error', failAll);
    worker.on('exit', (code) => {
      if (!this.closed) failAll(new Error(`exited with code ${code}`));
    });
    worker.unref();
    return entry;
  }

  /** Signs on the least busy worker. Rejects with KeylessError carrying the protocol error code. */
  sign(key: SigningKey, opcode: number, payload: Uint8Array): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new KeylessError(ErrorCode.internalError, 'signing pool closed'));
    let target = this.workers[0]!;
    for (const w of this.workers) if (w.pending.size < target.pending.size) target = w;
    const id = (this.nextId = (this.nextId + 1) >>> 0);
    const job: WorkerJob = {
      id,
      skiHex: key.skiHex,
      opcode,
      payload,
      ...(target.sent.has(key) ? {} : { key: key.key }),
    };
    target.sent.add(key);
    return new Promise<Uint8Array>((resolve, reject) => {
      target.pending.set(id, { resolve, reject });
      target.worker.postMessage(job);
    });
  }

  /**
   * After a key set reload: every worker drops the keys whose SKI is not listed, so a key removed
   * from the key server's directory does not live on in a worker's memory.
   */
  retainOnly(skiHexes: Iterable<string>): void {
    const retain = [...skiHexes];
    for (const w of this.workers) {
      w.worker.postMessage({ retain } satisfies WorkerControl);
      w.sent = new WeakSet(); // a key that comes back is sent again
    }
  }

  /** How many keys each worker holds (tests and diagnostics: where copies of keys live). */
  heldKeyCounts(): Promise<number[]> {
    return Promise.all(
      this.workers.map(
        (w) =>
          new Promise<number>((resolve) => {
            const tag = (this.nextId = (this.nextId + 1) >>> 0);
            w.counts.set(tag, resolve);
            w.worker.postMessage({ countKeys: tag } satisfies WorkerControl);
          }),
      ),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }
}
