/** Glue for the executable entry files: the real process as a ProgramContext, and "am I the entry point?". */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ProgramContext } from './registry.js';

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
