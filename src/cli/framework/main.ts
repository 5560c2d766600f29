/** Glue for the executable entry files: the real process as a ProgramContext, and "am I the entry point?". */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ProgramContext } from './registry.js';

/**
 * The oldest Node.js major the processes run on: package.json `engines` and .nvmrc say the same
 * (a unit test keeps them together). Older majors lack node:crypto's ML-KEM/ML-DSA and get no
 * security releases.
 */
export const MIN_NODE_MAJOR = 24;

/**
 * Refuses to start on an older Node with one line that says what to do, instead of failing later
 * on a missing API. Returns the exit code to use, or undefined when the runtime is fine.
 */
export function unsupportedRuntime(program: string, version = process.versions.node, stderr = (t: string) => void process.stderr.write(t)): number | undefined {
  const major = Number(version.split('.')[0]);
  if (major >= MIN_NODE_MAJOR) return undefined;
  stderr(`${program}: needs Node.js >= ${MIN_NODE_MAJOR}, this is v${version}. In the repository, run it through make (which bootstraps the pinned Node) or put the node that \`make node-version\` prints first on PATH.\n`);
  return 2;
}

export function processContext(): ProgramContext {
  return {
    stdout: (t) => void process.stdout.write(t),
    stderr: (t) => void process.stderr.write(t),
    cwd: process.cwd(),
    env: process.env,
    now: () => new Date(),
  };
}

/** True when `moduleUrl` (import.meta.url) is the script node was started with, also via a bin symlink. */
export function isEntryPoint(moduleUrl: string): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}
