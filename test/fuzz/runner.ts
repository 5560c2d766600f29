/**
 * Runs one target in a worker thread for a given time and watches it: an input that runs for
 * longer than `hangSeconds` is a hang (the worker is terminated, which stops even a synchronous
 * loop), a worker that dies (out of memory) is a crash. A crashing input is written under
 * test/fuzz/crashes/<target>/ with the error beside it, and the summary says how to replay it.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { CoverageSummary } from './coverage.js';
import {
  committedCorpus,
  crashDir,
  DIST_URL,
  REPO_ROOT,
  SHARED_HEADER,
  type CrashReport,
  type TargetName,
  type WorkerInput,
  type WorkerMessage,
} from './protocol.js';

export interface RunOptions {
  readonly seconds: number;
  readonly seed?: number;
  /** Extra corpus directories besides the committed one. */
  readonly extraCorpus?: readonly string[];
  /** Where to write new coverage-increasing inputs. */
  readonly saveDir?: string;
  /** An input running longer than this is a hang (default 10 s). */
  readonly hangSeconds?: number;
  /** Progress lines while running (0: none). */
  readonly reportEveryMs?: number;
  readonly onProgress?: (line: string) => void;
  /** Write crashing inputs under test/fuzz/crashes/ (default true). */
  readonly saveCrashes?: boolean;
}

export interface RunResult {
  readonly target: TargetName;
  readonly seed: number;
  readonly execs: number;
  readonly seconds: number;
  readonly corpus: number;
  readonly newInputs: number;
  readonly coverage: CoverageSummary | undefined;
  readonly coverageAll: CoverageSummary | undefined;
  readonly crash: CrashReport | undefined;
  /** Where the crashing input was written. */
  readonly crashFile: string | undefined;
  /** One line: executions, rate, corpus, coverage, and the verdict. */
  readonly summary: string;
}

const MAX_INPUT = 1 << 20;

function pct(covered: number, known: number): string {
  return known === 0 ? '0%' : `${((100 * covered) / known).toFixed(1)}%`;
}

export function formatCoverage(c: CoverageSummary | undefined): string {
  if (!c) return 'no coverage';
  return `blocks ${c.blocksCovered}/${c.blocksKnown} (${pct(c.blocksCovered, c.blocksKnown)}), functions ${c.functionsCovered}/${c.functionsKnown}`;
}

export function reproCommand(target: string, file: string): string {
  return `make fuzz-repro TARGET=${target} INPUT=${relative(REPO_ROOT, file)}`;
}

export function runTarget(target: TargetName, options: RunOptions): Promise<RunResult> {
  const seed = options.seed ?? (Math.random() * 2 ** 32) >>> 0;
  const shared = new SharedArrayBuffer(SHARED_HEADER + MAX_INPUT);
  const heartbeat = new Int32Array(shared, 0, 2);
  const input: WorkerInput = {
    target,
    seconds: options.seconds,
    seed,
    corpusDirs: [committedCorpus(target), ...(options.extraCorpus ?? [])],
    saveDir: options.saveDir,
    reportEveryMs: options.reportEveryMs ?? 0,
    distUrl: DIST_URL,
    shared,
  };
  const hangMs = (options.hangSeconds ?? 10) * 1000;
  const started = performance.now();
  const worker = new Worker(new URL('./worker.js', import.meta.url), {
    workerData: input,
    resourceLimits: { maxOldGenerationSizeMb: 2048 },
  });

  const currentInput = (): Uint8Array => {
    const n = Atomics.load(heartbeat, 1);
    return new Uint8Array(shared, SHARED_HEADER, n).slice();
  };

  return new Promise<RunResult>((resolve) => {
    let last: Extract<WorkerMessage, { type: 'stats' | 'done' }> | undefined;
    let settled = false;
    let lastBeat = Atomics.load(heartbeat, 0);
    let lastBeatAt = performance.now();

    const settle = (crash: CrashReport | undefined): void => {
      if (settled) return;
      settled = true;
      clearInterval(watchdog);
      void worker.terminate();
      let crashFile: string | undefined;
      if (crash && options.saveCrashes !== false && !(crash.kind === 'worker-died' && crash.input.length === 0)) {
        const dir = crashDir(target);
        mkdirSync(dir, { recursive: true });
        crashFile = join(dir, `${crash.kind}-${createHash('sha1').update(crash.input).digest('hex').slice(0, 16)}`);
        writeFileSync(crashFile, crash.input);
        writeFileSync(`${crashFile}.txt`, `${crash.error}\n\nreproduce: ${reproCommand(target, crashFile)}\n`);
      }
      const execs = last?.execs ?? Atomics.load(heartbeat, 0);
      const seconds = (last?.elapsedMs ?? performance.now() - started) / 1000;
      const rate = seconds > 0 ? Math.round(execs / seconds) : 0;
      const verdict = crash
        ? `${crash.kind.toUpperCase()}: ${crash.error.split('\n')[0]}${crashFile ? `; input in ${relative(REPO_ROOT, crashFile)}; reproduce: ${reproCommand(target, crashFile)}` : ''}`
        : 'no crash';
      const summary =
        `fuzz ${target}: ${execs} execs in ${seconds.toFixed(1)} s (${rate}/s), corpus ${last?.corpus ?? '?'} (+${last?.newInputs ?? 0}), ` +
        `${formatCoverage(last?.coverage)} in its modules, seed ${seed}: ${verdict}`;
      resolve({
        target,
        seed,
        execs,
        seconds,
        corpus: last?.corpus ?? 0,
        newInputs: last?.newInputs ?? 0,
        coverage: last?.coverage,
        coverageAll: last?.coverageAll,
        crash,
        crashFile,
        summary,
      });
    };

    const watchdog = setInterval(() => {
      const beat = Atomics.load(heartbeat, 0);
      const now = performance.now();
      if (beat !== lastBeat) {
        lastBeat = beat;
        lastBeatAt = now;
      } else if (beat > 0 && now - lastBeatAt > hangMs) {
        settle({ kind: 'timeout', input: currentInput(), error: `one input ran for more than ${hangMs / 1000} s` });
      }
    }, 100);

    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'failed') {
        settle({ kind: 'worker-died', input: new Uint8Array(0), error: `the fuzzing loop failed: ${m.error}` });
        return;
      }
      last = m;
      if (m.type === 'done') settle(m.crash);
      else options.onProgress?.(`  ${target}: ${m.execs} execs, ${Math.round(m.execs / (m.elapsedMs / 1000))}/s, corpus ${m.corpus}, ${formatCoverage(m.coverage)}`);
    });
    worker.on('error', (e) => {
      settle({ kind: 'worker-died', input: currentInput(), error: e.stack ?? String(e) });
    });
    worker.on('exit', (code) => {
      if (!settled) settle({ kind: 'worker-died', input: currentInput(), error: `worker exited with code ${code}` });
    });
  });
}
