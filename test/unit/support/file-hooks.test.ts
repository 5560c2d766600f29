// The test harness's own guards, run on small test files in child `node --test` processes:
// beforeAndAfter tears down what a slow setup started even when every test of the file is
// filtered out, and the file watchdog ends a test process that something keeps alive.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { activeResourceSummary, withoutThisImport } from '../../support/file-watchdog.js';

const dir = mkdtempSync(join(tmpdir(), 'dc-file-hooks-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const hooksUrl = pathToFileURL(resolve('dist/test/support/file-hooks.js')).href;
const watchdogPath = resolve('dist/test/support/file-watchdog.js');

/** A test file whose setup takes a while, then starts an interval that keeps the process alive until teardown clears it. */
function slowSetupFile(name: string, opts: { setupFails?: boolean } = {}): string {
  const file = join(dir, name);
  writeFileSync(
    file,
    `import { it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { beforeAndAfter } from ${JSON.stringify(hooksUrl)};
let keepAlive;
beforeAndAfter(async () => {
  await sleep(300);
  keepAlive = setInterval(() => {}, 1000);
  console.log('setup done');
  ${opts.setupFails ? "throw new Error('setup failed on purpose');" : ''}
}, async () => {
  clearInterval(keepAlive);
  console.log('teardown done');
});
it('the only test', () => { console.log('test ran'); });
`,
  );
  return file;
}

/** Runs `node <flags> --test <files>`, killed after `killAfterMs`; stdout and stderr together. */
function runTestFiles(files: string[], flags: string[], env: Record<string, string> = {}, killAfterMs = 20_000): { status: number | null; output: string; ms: number } {
  const started = Date.now();
  const r = spawnSync(process.execPath, [...flags, '--test', '--test-reporter=spec', ...files], {
    encoding: 'utf8',
    timeout: killAfterMs,
    killSignal: 'SIGKILL',
    env: { ...process.env, NODE_TEST_CONTEXT: undefined, DC_TEST_FILE_TIMEOUT_MS: undefined, DC_TEST_FILE_TIMES: undefined, ...env },
  });
  return { status: r.status, output: `${r.stdout}${r.stderr}`, ms: Date.now() - started };
}

void it('beforeAndAfter tears down after a slow setup when --test-name-pattern filters out every test of the file, so the process ends', () => {
  const r = runTestFiles([slowSetupFile('filtered.mjs')], ['--test-name-pattern=matches nothing']);
  assert.notEqual(r.status, null, `the test process did not end within 20 s (kept alive by what the setup started):\n${r.output}`);
  assert.equal(r.status, 0, r.output);
  assert.ok(r.output.includes('setup done') && r.output.includes('teardown done'), r.output);
  assert.ok(r.output.indexOf('setup done') < r.output.indexOf('teardown done'), `teardown ran before the setup finished:\n${r.output}`);
  assert.ok(!r.output.includes('test ran'), r.output);
});

void it('beforeAndAfter runs setup, the tests, then teardown, when the tests are not filtered', () => {
  const r = runTestFiles([slowSetupFile('plain.mjs')], []);
  assert.equal(r.status, 0, r.output);
  const order = ['setup done', 'test ran', 'teardown done'].map((s) => r.output.indexOf(s));
  assert.ok(order.every((i, k) => i >= 0 && (k === 0 || i > (order[k - 1] ?? -1))), `order ${JSON.stringify(order)}:\n${r.output}`);
});

void it('beforeAndAfter still tears down when the setup fails after starting something, and the file fails', () => {
  const r = runTestFiles([slowSetupFile('failing-setup.mjs', { setupFails: true })], []);
  assert.notEqual(r.status, null, `the test process did not end within 20 s:\n${r.output}`);
  assert.notEqual(r.status, 0, r.output);
  assert.ok(r.output.includes('setup failed on purpose') && r.output.includes('teardown done'), r.output);
});

void it('the file watchdog fails a test file whose process stays alive past DC_TEST_FILE_TIMEOUT_MS, saying what holds it', () => {
  const file = join(dir, 'leaks.mjs');
  writeFileSync(file, "import { it } from 'node:test';\nit('starts an interval nobody clears', () => { setInterval(() => {}, 1000); });\n");
  const r = runTestFiles([file], ['--import', watchdogPath], { DC_TEST_FILE_TIMEOUT_MS: '1500' });
  assert.notEqual(r.status, null, `the watchdog did not end the process:\n${r.output}`);
  assert.notEqual(r.status, 0, r.output);
  assert.match(r.output, /\[file-watchdog\] .*leaks\.mjs still running after 1\.5 s/);
  assert.match(r.output, /Keeping the process alive: .*\d+ Timeout/);
});

void it('the file watchdog bounds each file, not the whole run: two files of 1 s each pass under a limit of 1.5 s', () => {
  const files = ['first', 'second'].map((name) => {
    const file = join(dir, `${name}.mjs`);
    writeFileSync(file, "import { it } from 'node:test';\nimport { setTimeout as sleep } from 'node:timers/promises';\nit('takes a second', () => sleep(1000));\n");
    return file;
  });
  // The runner process loads the module too (node --test passes --import on), and runs these one after the other.
  const r = runTestFiles(files, ['--import', watchdogPath, '--test-concurrency=1'], { DC_TEST_FILE_TIMEOUT_MS: '1500' });
  assert.equal(r.status, 0, r.output);
  assert.ok(r.ms >= 2000, `took ${r.ms} ms: did both files run?`);
  assert.doesNotMatch(r.output, /file-watchdog/);
});

void it('activeResourceSummary counts resources by kind', () => {
  assert.equal(activeResourceSummary(['Timeout', 'TCPSocketWrap', 'Timeout']), '2 Timeout, 1 TCPSocketWrap');
  assert.equal(activeResourceSummary([]), 'nothing');
});

void it('withoutThisImport drops the flag that loaded the watchdog, in each spelling, and keeps the rest', () => {
  const self = pathToFileURL(watchdogPath).href;
  assert.deepEqual(withoutThisImport(['--enable-source-maps', '--import', self, '--import', 'other.js'], self), ['--enable-source-maps', '--import', 'other.js']);
  assert.deepEqual(withoutThisImport([`--import=${self}`, '--no-warnings'], self), ['--no-warnings']);
  assert.deepEqual(withoutThisImport(['--import', watchdogPath], self), []);
});

void it('a process forked by a test file does not inherit the file watchdog', () => {
  const child = join(dir, 'child.mjs');
  writeFileSync(child, 'process.exit(0);\n');
  const file = join(dir, 'forks.mjs');
  writeFileSync(
    file,
    `import { it } from 'node:test';
import { fork } from 'node:child_process';
it('forks a child', () => new Promise((resolve) => fork(${JSON.stringify(child)}).on('exit', resolve)));
`,
  );
  // With DC_TEST_FILE_TIMES=1 every process that loaded the watchdog as a test file says how long it ran.
  const r = runTestFiles([file], ['--import', watchdogPath], { DC_TEST_FILE_TIMES: '1' });
  assert.equal(r.status, 0, r.output);
  assert.match(r.output, /\[file-watchdog\] .*forks\.mjs ran \d+ ms/);
  assert.doesNotMatch(r.output, /child\.mjs ran/);
});
