// Bounds the life of one test file's process: scripts/run-tests.mjs loads this into every test
// process (`node --import`; node --test passes the flag on to the process of each file) with
// DC_TEST_FILE_TIMEOUT_MS. --test-timeout bounds each test, but not a file whose tests are done
// while something they started (a watch, a server, a child process) keeps its event loop alive:
// node --test waits for that process forever. Past the limit the process says what still holds
// it and exits with status 1, which fails the file. With DC_TEST_FILE_TIMES=1 each file's process
// prints how long it ran (to size the limit: scripts/run-tests.mjs says how it was chosen).
import { setTimeout } from 'node:timers';
import { fileURLToPath } from 'node:url';
import { isMainThread } from 'node:worker_threads';

/**
 * Set by node --test in the process of each test file (absent in the runner process itself).
 * Inherited by what that process forks, with its --import flags: see withoutThisImport.
 */
const inTestFileProcess = process.env['NODE_TEST_CONTEXT'] !== undefined && isMainThread;
const limitMs = Number(process.env['DC_TEST_FILE_TIMEOUT_MS'] ?? '');

/** "3 TCPSocketWrap, 2 Timeout, ...": what keeps the event loop alive (this timer is unref'd, not counted). */
export function activeResourceSummary(resources: readonly string[] = process.getActiveResourcesInfo()): string {
  const counts = new Map<string, number>();
  for (const r of resources) counts.set(r, (counts.get(r) ?? 0) + 1);
  return [...counts].map(([name, n]) => `${n} ${name}`).join(', ') || 'nothing';
}

/**
 * `execArgv` without the flag that loaded this module (`--import URL`, `--import=URL`, or a path),
 * so a process the test forks (child_process.fork passes execArgv on) is not bounded as a test file.
 */
export function withoutThisImport(execArgv: readonly string[], self: string = import.meta.url): string[] {
  const isSelf = (v: string | undefined): boolean => v !== undefined && (v === self || (self.startsWith('file:') && v === fileURLToPath(self)));
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const a = execArgv[i] ?? '';
    if (a === '--import' && isSelf(execArgv[i + 1])) i++;
    else if (!(a.startsWith('--import=') && isSelf(a.slice('--import='.length)))) out.push(a);
  }
  return out;
}

if (inTestFileProcess) process.execArgv.splice(0, process.execArgv.length, ...withoutThisImport(process.execArgv));

const startedAt = Date.now();
const file = process.argv[1] ?? 'this test file';

if (inTestFileProcess && process.env['DC_TEST_FILE_TIMES'] === '1') {
  process.on('exit', () => process.stderr.write(`[file-watchdog] ${file} ran ${Date.now() - startedAt} ms\n`));
}

if (inTestFileProcess && Number.isFinite(limitMs) && limitMs > 0) {
  setTimeout(() => {
    process.stderr.write(
      `\n[file-watchdog] ${file} still running after ${limitMs / 1000} s ` +
        `(DC_TEST_FILE_TIMEOUT_MS): a test or hook hangs, or something a test started was not stopped. ` +
        `Keeping the process alive: ${activeResourceSummary()}. Exiting with status 1.\n`,
    );
    process.exit(1);
  }, limitMs).unref();
}
