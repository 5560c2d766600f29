/**
 * Node's module compile cache for the executables (dc-operator, dcctl): V8's code cache of every
 * module they load, kept on disk so that the next start compiles less. Numbers:
 * bench/results/sidecar-perf.md, section 8.
 *
 * In the image, NODE_COMPILE_CACHE (Dockerfile) names a cache written at build time, read-only at
 * run time; Node has then enabled it before any of our code runs, and the call below only reports
 * ALREADY_ENABLED. Elsewhere (a developer's machine, CI) it enables a cache in the user's own cache
 * directory: never a shared one such as /tmp, where another local user could plant V8 code for
 * our uid (Node keys the cache by version, V8 flags and uid, and trusts whatever it finds there).
 *
 * What Node does with the cache, checked (section 8): a missing, unwritable or read-only directory,
 * an entry of another Node or V8 flag set, or a file that changed since the entry was written is a
 * miss, compiled as without a cache, never an error. It never throws: a cache is an optimisation.
 */
// The default export, not named imports: on a Node older than 22.8 the entry point must still
// load and say which Node it needs (main.ts, unsupportedRuntime) instead of failing to link.
import nodeModule, { type EnableCompileCacheResult } from 'node:module';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';

/** The cache directory when NODE_COMPILE_CACHE does not name one: $XDG_CACHE_HOME or ~/.cache, then dc-operator/node-compile-cache. */
export function userCompileCacheDir(env: NodeJS.ProcessEnv = process.env, home: () => string = homedir): string | undefined {
  const xdg = env.XDG_CACHE_HOME;
  if (xdg && isAbsolute(xdg)) return join(xdg, 'dc-operator', 'node-compile-cache');
  let dir: string;
  try {
    dir = home();
  } catch {
    return undefined;
  }
  // A uid without a home (e.g. 65532 in the image: HOME=/) gets no cache here rather than one at the root.
  return dir && dir !== '/' && isAbsolute(dir) ? join(dir, '.cache', 'dc-operator', 'node-compile-cache') : undefined;
}

/**
 * Enables the compile cache for the rest of this process: modules imported from now on (the
 * executables import their commands lazily, so nearly all of them) are read from it or added to
 * it when the process exits. Undefined when there is nowhere to put it.
 */
export function enableModuleCompileCache(env: NodeJS.ProcessEnv = process.env): EnableCompileCacheResult | undefined {
  if (typeof nodeModule.enableCompileCache !== 'function') return undefined;
  if (env.NODE_COMPILE_CACHE) return nodeModule.enableCompileCache();
  const dir = userCompileCacheDir(env);
  return dir === undefined ? undefined : nodeModule.enableCompileCache({ directory: dir });
}
