/**
 * The fuzzing loop, run in a worker thread by runner.ts (so that the main thread can stop a
 * hanging input with `worker.terminate()`). It replays the corpus, then mutates corpus inputs
 * until the deadline, keeping each mutant that runs a block no earlier input ran.
 *
 * Coverage is taken once per batch of mutants (a take costs ~1 ms, an execution ~10 µs): a batch
 * with nothing new is dropped whole; a batch with something new is replayed one input at a time
 * to find the inputs that bring it. The batch grows while nothing new turns up and shrinks to 1
 * when something does.
 *
 * Before each execution the input is copied into shared memory and a counter is bumped: after a
 * hang or a crash of the thread the runner knows the input.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { CoverageMap } from './coverage.js';
import { Mutator, Random } from './mutate.js';
import type { FuzzTarget } from './target.js';
import type { WorkerInput, WorkerMessage, CrashReport } from './protocol.js';
import { loadCorpus, loadTarget, SHARED_HEADER } from './protocol.js';

const job = workerData as WorkerInput;
const heartbeat = new Int32Array(job.shared, 0, 2);
const sharedBytes = new Uint8Array(job.shared, SHARED_HEADER);

function post(message: WorkerMessage): void {
  parentPort!.postMessage(message);
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.stack ?? `${error.name}: ${error.message}`;
  return `non-Error value thrown: ${String(error)}`;
}

let rejection: unknown;
let rejected = false;
process.on('unhandledRejection', (reason) => {
  if (!rejected) {
    rejected = true;
    rejection = reason;
  }
});

async function exec(target: FuzzTarget, input: Uint8Array): Promise<CrashReport | undefined> {
  const n = Math.min(input.length, sharedBytes.length);
  sharedBytes.set(input.subarray(0, n));
  Atomics.store(heartbeat, 1, n);
  Atomics.add(heartbeat, 0, 1);
  try {
    const pending = target.run(input);
    if (pending instanceof Promise) await pending;
  } catch (e) {
    if (!target.expected(e)) return { kind: 'crash', input, error: describe(e) };
  }
  if (rejected) return { kind: 'unhandled-rejection', input, error: describe(rejection) };
  return undefined;
}

async function main(): Promise<void> {
  const target = await loadTarget(job.target);
  await target.setup?.();
  const srcRoot = `${job.distUrl}src/`;
  const coverage = new CoverageMap((url) => url.startsWith(srcRoot));
  const inModules = (url: string): boolean => target.modules.some((m) => url.startsWith(`${job.distUrl}${m}`));
  const rnd = new Random(job.seed);
  const mutator = new Mutator(rnd, target.maxLength, target.dictionary);
  const started = performance.now();
  const deadline = started + job.seconds * 1000;
  let execs = 0;
  let newInputs = 0;
  const corpus: Uint8Array[] = [];

  const stats = (): WorkerMessage & { type: 'stats' } => ({
    type: 'stats',
    execs,
    elapsedMs: performance.now() - started,
    corpus: corpus.length,
    newInputs,
    coverage: coverage.summary(inModules),
    coverageAll: coverage.summary(),
  });

  const finish = (crash?: CrashReport): void => {
    post({ ...stats(), type: 'done', crash });
  };

  const keep = (input: Uint8Array): void => {
    corpus.push(input);
    newInputs++;
    if (job.saveDir) {
      mkdirSync(job.saveDir, { recursive: true });
      writeFileSync(join(job.saveDir, createHash('sha1').update(input).digest('hex')), input);
    }
  };

  // Replay the corpus one input at a time: regressions first, and the coverage to beat.
  const seeds = loadCorpus(job.corpusDirs);
  coverage.reset();
  for (const seed of seeds.length > 0 ? seeds : [new Uint8Array(0)]) {
    const crash = await exec(target, seed);
    execs++;
    if (crash) return finish(crash);
    coverage.add(coverage.collect());
    corpus.push(seed);
  }

  let batch = 1;
  let lastReport = performance.now();
  while (performance.now() < deadline) {
    const mutants: Uint8Array[] = [];
    for (let i = 0; i < batch; i++) {
      const base = corpus[rnd.below(corpus.length)]!;
      const other = corpus[rnd.below(corpus.length)]!;
      const mutant = mutator.mutate(base, other);
      mutants.push(mutant);
      const crash = await exec(target, mutant);
      execs++;
      if (crash) return finish(crash);
    }
    const ran = coverage.collect();
    if (!coverage.hasNew(ran)) {
      batch = Math.min(batch * 2, 256);
    } else if (batch === 1) {
      coverage.add(ran);
      keep(mutants[0]!);
    } else {
      for (const mutant of mutants) {
        const crash = await exec(target, mutant);
        execs++;
        if (crash) return finish(crash);
        if (coverage.add(coverage.collect()) > 0) keep(mutant);
      }
      batch = 1;
    }
    if (job.reportEveryMs > 0 && performance.now() - lastReport >= job.reportEveryMs) {
      lastReport = performance.now();
      post(stats());
    }
  }
  finish();
}

main().catch((e: unknown) => {
  post({ type: 'failed', error: describe(e) });
});
