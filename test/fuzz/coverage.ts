/**
 * Block coverage from V8 through node:inspector (Profiler.takePreciseCoverage, detailed, with
 * call counts): the feedback that makes the fuzzer coverage-guided. A synchronous Session on the
 * current isolate (the worker's own) answers `post` before it returns.
 *
 * V8 reports, per function, the function's range and the nested ranges whose count differs from
 * their parent's; a nested block run exactly as often as its parent is not listed. So a block is
 * identified by the ranges V8 has ever listed for its function (`known`), and it ran in a given
 * take when the innermost range listed in that take around it has a count above 0. Each take
 * resets the counters, so a take covers exactly the executions since the previous one.
 */
import { Session } from 'node:inspector';

interface Range {
  readonly startOffset: number;
  readonly endOffset: number;
  readonly count: number;
}
interface FunctionCoverage {
  readonly functionName: string;
  readonly ranges: readonly Range[];
  readonly isBlockCoverage: boolean;
}
interface ScriptCoverage {
  readonly scriptId: string;
  readonly url: string;
  readonly functions: readonly FunctionCoverage[];
}

interface KnownBlock {
  readonly start: number;
  readonly end: number;
  readonly id: number;
}

export interface CoverageSummary {
  /** Blocks (V8 ranges) that ran at least once / blocks V8 has listed so far. */
  readonly blocksCovered: number;
  readonly blocksKnown: number;
  /** Functions that ran at least once / functions V8 has listed so far (compiled ones). */
  readonly functionsCovered: number;
  readonly functionsKnown: number;
}

export class CoverageMap {
  private readonly session = new Session();
  /** Per function (url#start): the blocks V8 has listed for it. */
  private readonly known = new Map<string, KnownBlock[]>();
  private readonly blockUrl: string[] = [];
  /** Block ids that ran in some execution so far. */
  private seen = new Uint8Array(1 << 12);
  private readonly functionSeen = new Map<string, boolean>();

  /** @param include which scripts count (by URL), e.g. the code under test. */
  constructor(private readonly include: (url: string) => boolean) {
    this.session.connect();
    this.post('Profiler.enable');
    this.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  }

  private post(method: string, params?: object): unknown {
    let result: unknown;
    let error: Error | null = null;
    let answered = false;
    this.session.post(method, params, (e: Error | null, r?: unknown) => {
      error = e;
      result = r;
      answered = true;
    });
    if (error) throw error as Error;
    if (!answered) throw new Error(`inspector did not answer ${method} synchronously`);
    return result;
  }

  /** Discards the counts gathered so far. */
  reset(): void {
    this.post('Profiler.takePreciseCoverage');
  }

  /** Ids of the blocks that ran since the previous take (or reset). */
  collect(): number[] {
    const { result } = this.post('Profiler.takePreciseCoverage') as { result: ScriptCoverage[] };
    const ran: number[] = [];
    for (const script of result) {
      if (!this.include(script.url)) continue;
      for (const fn of script.functions) {
        const ranges = fn.ranges;
        const head = ranges[0];
        if (!head) continue;
        const key = `${script.url}#${head.startOffset}`;
        let blocks = this.known.get(key);
        if (!blocks) {
          blocks = [];
          this.known.set(key, blocks);
          this.functionSeen.set(key, false);
        }
        for (const r of ranges) {
          if (!blocks.some((b) => b.start === r.startOffset && b.end === r.endOffset)) {
            const id = this.blockUrl.length;
            this.blockUrl.push(script.url);
            blocks.push({ start: r.startOffset, end: r.endOffset, id });
          }
        }
        if (head.count === 0) continue;
        this.functionSeen.set(key, true);
        for (const b of blocks) {
          // The innermost listed range around the block: ranges nest, so the one that starts last.
          let count = 0;
          let innermost = -1;
          for (const r of ranges) {
            if (r.startOffset <= b.start && b.end <= r.endOffset && r.startOffset >= innermost) {
              innermost = r.startOffset;
              count = r.count;
            }
          }
          if (count > 0) ran.push(b.id);
        }
      }
    }
    return ran;
  }

  /** Whether any of `ids` never ran before. */
  hasNew(ids: readonly number[]): boolean {
    for (const id of ids) if (id >= this.seen.length || this.seen[id] === 0) return true;
    return false;
  }

  /** Records `ids` as seen; returns how many were new. */
  add(ids: readonly number[]): number {
    let added = 0;
    for (const id of ids) {
      if (id >= this.seen.length) {
        const grown = new Uint8Array(Math.max(this.seen.length * 2, id + 1));
        grown.set(this.seen);
        this.seen = grown;
      }
      if (this.seen[id] === 0) {
        this.seen[id] = 1;
        added++;
      }
    }
    return added;
  }

  /** Coverage of the scripts whose URL passes `filter` (default: all included scripts). */
  summary(filter: (url: string) => boolean = () => true): CoverageSummary {
    let blocksCovered = 0;
    let blocksKnown = 0;
    for (let id = 0; id < this.blockUrl.length; id++) {
      if (!filter(this.blockUrl[id]!)) continue;
      blocksKnown++;
      if (id < this.seen.length && this.seen[id] === 1) blocksCovered++;
    }
    let functionsCovered = 0;
    let functionsKnown = 0;
    for (const [key, ran] of this.functionSeen) {
      if (!filter(key.slice(0, key.lastIndexOf('#')))) continue;
      functionsKnown++;
      if (ran) functionsCovered++;
    }
    return { blocksCovered, blocksKnown, functionsCovered, functionsKnown };
  }

  close(): void {
    this.session.disconnect();
  }
}
