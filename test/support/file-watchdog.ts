// Bounds the life of one test file's process: scripts/run-tests.mjs loads this into every test
// process (`node --import`; node --test passes the flag on to the process of each file) with
// DC_TEST_FILE_TIMEOUT_MS. --test-timeout bounds each test, but not a file whose tests are done
// while something they started (a watch, a server, a child process) keeps its event loop alive:
// node --test waits for that process forever. Past the limit the process says what still holds
// it and exits with status 1, which fails the file.
import { setTimeout } from 'node:timers';

/** Set by node --test in the process of each test file (absent in the runner process itself). */
const inTestFileProcess = process.env['NODE_TEST_CONTEXT'] !== undefined;
const limitMs = Number(process.env['DC_TEST_FILE_TIMEOUT_MS'] ?? '');

/** "3 TCPSocketWrap, 2 Timeout, ...": what keeps the event loop alive (this timer is unref'd, not counted). */
export function activeResourceSummary(resources: readonly string[] = process.getActiveResourcesInfo()): string {
  const counts = new Map<string, number>();
  for (const r of resources) counts.set(r, (counts.get(r) ?? 0) + 1);
  return [...counts].map(([name, n]) => `${n} ${name}`).join(', ') || 'nothing';
}

if (inTestFileProcess && Number.isFinite(limitMs) && limitMs > 0) {
  setTimeout(() => {
    process.stderr.write(
      `\n[file-watchdog] ${process.argv[1] ?? 'this test file'} still running after ${limitMs / 1000} s ` +
        `(DC_TEST_FILE_TIMEOUT_MS): a test or hook hangs, or something a test started was not stopped. ` +
        `Keeping the process alive: ${activeResourceSummary()}. Exiting with status 1.\n`,
    );
    process.exit(1);
  }, limitMs).unref();
}
