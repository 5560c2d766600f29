/**
 * Shared between the runner (main thread) and the worker: the targets, where things live, and
 * the messages they exchange.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CoverageSummary } from './coverage.js';
import type { FuzzTarget } from './target.js';

/** One file per target in targets/, named as here. */
export const TARGETS = ['tls-codec', 'record-layer', 'client-hello-peek', 'dc-decoder', 'keyless-codec', 'server-hello'] as const;
export type TargetName = (typeof TARGETS)[number];

export function isTargetName(name: string): name is TargetName {
  return (TARGETS as readonly string[]).includes(name);
}

export async function loadTarget(name: TargetName): Promise<FuzzTarget> {
  const mod = (await import(`./targets/${name}.js`)) as { target: FuzzTarget };
  return mod.target;
}

/** The repository (this file is dist/test/fuzz/protocol.js once built). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** file:// URL of dist/, for telling the code under test from the rest in coverage. */
export const DIST_URL = new URL('../../', import.meta.url).href;

/** Committed seeds and regression inputs. */
export function committedCorpus(target: string): string {
  return join(REPO_ROOT, 'test', 'fuzz', 'corpus', target);
}
/** Inputs `make fuzz` found (not committed; copy the useful ones into the committed corpus). */
export function workCorpus(target: string): string {
  return join(REPO_ROOT, '.dev', 'fuzz', 'corpus', target);
}
/** Where crashing inputs are written. */
export function crashDir(target: string): string {
  return join(REPO_ROOT, 'test', 'fuzz', 'crashes', target);
}

/** The files of the given directories (missing ones are skipped), in name order. */
export function loadCorpus(dirs: readonly string[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const dir of dirs) {
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir).sort()) {
      const file = join(dir, name);
      if (name.startsWith('.') || name.endsWith('.md') || !statSync(file).isFile()) continue;
      out.push(new Uint8Array(readFileSync(file)));
    }
  }
  return out;
}

/** Shared memory: [exec counter, input length] then the input being run. */
export const SHARED_HEADER = 8;

export interface WorkerInput {
  readonly target: TargetName;
  readonly seconds: number;
  readonly seed: number;
  readonly corpusDirs: readonly string[];
  /** Where new coverage-increasing inputs are written (none when undefined). */
  readonly saveDir: string | undefined;
  readonly reportEveryMs: number;
  readonly distUrl: string;
  readonly shared: SharedArrayBuffer;
}

export interface CrashReport {
  readonly kind: 'crash' | 'unhandled-rejection' | 'timeout' | 'worker-died';
  readonly input: Uint8Array;
  readonly error: string;
}

export type WorkerMessage =
  | {
      readonly type: 'stats' | 'done';
      readonly execs: number;
      readonly elapsedMs: number;
      readonly corpus: number;
      readonly newInputs: number;
      /** Coverage of the target's own modules, and of all of src/. */
      readonly coverage: CoverageSummary;
      readonly coverageAll: CoverageSummary;
      readonly crash?: CrashReport | undefined;
    }
  | { readonly type: 'failed'; readonly error: string };
