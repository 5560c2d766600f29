/**
 * A fine-grained thread CPU clock for benches that bracket single calls (handshake-server-ab):
 * bench/native/thread-clock.c, compiled on first use into the user's cache with the same
 * compiler and Node headers as scripts/build-native.mjs. Without a compiler or the headers it
 * falls back to process.threadCpuUsage(), which moves in steps of 70 us to over 1 ms on this
 * machine's kernel (fine over long runs, not per call), and says so.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The source sits in bench/native/ of the repository; this file runs from dist/bench/. */
const SOURCE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'native', 'thread-clock.c');

function compile(): ((() => number) | undefined) {
  const include = join(dirname(process.execPath), '..', 'include', 'node');
  if (!existsSync(SOURCE) || !existsSync(join(include, 'node_api.h'))) return undefined;
  const source = readFileSync(SOURCE);
  const hash = createHash('sha256').update(source).update(`\0${process.version}\0${process.arch}`).digest('hex').slice(0, 16);
  const dir = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'dc-operator', 'bench-native', hash);
  const target = join(dir, 'thread-clock.node');
  try {
    if (!existsSync(target)) {
      mkdirSync(dir, { recursive: true });
      const tmp = `${target}.${process.pid}.tmp`;
      execFileSync(process.env.CC || 'cc', ['-O2', '-fPIC', '-shared', '-std=c11', '-Wall', '-Werror', '-I', include, '-o', tmp, SOURCE], { stdio: 'inherit' });
      renameSync(tmp, target);
    }
    const addon = createRequire(import.meta.url)(target) as { threadCpuNs(): number };
    return () => addon.threadCpuNs() / 1000;
  } catch {
    return undefined;
  }
}

const precise = compile();
/** Which clock threadCpuUs reads, for the bench's header. */
export const threadClockName = precise ? 'clock_gettime(CLOCK_THREAD_CPUTIME_ID)' : 'process.threadCpuUsage (coarse: no compiler or Node headers)';
/** The calling thread's CPU time in us. */
export const threadCpuUs: () => number =
  precise ??
  (() => {
    const u = process.threadCpuUsage();
    return u.user + u.system;
  });
