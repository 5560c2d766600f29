/**
 * Signing on the main thread, shared fairly between client identities by what their signatures
 * cost (deficit round robin, signature-cost.ts), with the event loop given back between slices.
 *
 * Why: signing on the main thread runs in the order requests were read, and one read can bring
 * hundreds of requests. One identity flooding with an expensive key (RSA-8192: tens of ms a
 * signature) then made every other identity's request wait behind all of its own, seconds, even
 * within its rate limit. Here each identity with work waiting gets the same share of signing cost
 * per round, and after `sliceCost` worth of signatures the queue yields (setImmediate) so that
 * requests of other identities are read and queued before the next slice: one identity's backlog
 * delays another's request by about one round, never by the backlog.
 *
 * The common case costs nothing extra: a request finding the queue idle and the slice not spent is
 * signed at once, in the same tick, as before.
 */

interface Job {
  readonly cost: number;
  readonly run: () => void;
}

interface Lane {
  readonly jobs: Job[];
  /** Cost this identity may still spend in the current round (deficit round robin). */
  deficit: number;
}

/** Cost worth of signatures between two yields to the event loop (in RSA-2048 signatures: ~4 ms). */
export const DEFAULT_SLICE_COST = 8;

export class FairQueue {
  /** Identities with work waiting, in round order (a Map keeps insertion order). */
  private readonly lanes = new Map<string, Lane>();
  private spent = 0;
  private draining = false;
  private scheduled = false;

  constructor(
    private readonly sliceCost = DEFAULT_SLICE_COST,
    /** How to give the event loop back (tests pass their own). */
    private readonly yieldThen: (next: () => void) => void = (next) => void setImmediate(next),
  ) {}

  /** Jobs waiting, all identities (tests, metrics). */
  get waiting(): number {
    let n = 0;
    for (const lane of this.lanes.values()) n += lane.jobs.length;
    return n;
  }

  /** Runs `job` in `identity`'s turn; `cost` in RSA-2048 signatures (signatureCost). Rejects with what it throws. */
  run<T>(identity: string, cost: number, job: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const run = (): void => {
        try {
          resolve(job());
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      };
      let lane = this.lanes.get(identity);
      if (lane === undefined) this.lanes.set(identity, (lane = { jobs: [], deficit: 0 }));
      lane.jobs.push({ cost: Math.max(1, cost), run });
      if (!this.scheduled) this.drain();
    });
  }

  private drain(): void {
    if (this.draining) return; // a job's own continuation queued more: the running loop takes it
    this.draining = true;
    try {
      while (this.lanes.size > 0) {
        if (this.spent >= this.sliceCost) {
          this.scheduled = true;
          this.yieldThen(() => {
            this.scheduled = false;
            this.spent = 0;
            this.drain();
          });
          return;
        }
        this.turn();
      }
    } finally {
      this.draining = false;
    }
  }

  /** One visit of the round: the first lane earns one unit (all it needs when alone) and spends what it can. */
  private turn(): void {
    const [identity, lane] = this.lanes.entries().next().value as [string, Lane];
    this.lanes.delete(identity);
    const head = lane.jobs[0]!;
    lane.deficit += this.lanes.size === 0 ? Math.max(1, head.cost - lane.deficit) : 1;
    while (lane.jobs.length > 0 && lane.jobs[0]!.cost <= lane.deficit && this.spent < this.sliceCost) {
      const job = lane.jobs.shift()!;
      lane.deficit -= job.cost;
      this.spent += job.cost;
      job.run();
    }
    // Back to the end of the round while it has work; an identity without work keeps no credit.
    if (lane.jobs.length > 0) this.lanes.set(identity, lane);
  }
}
