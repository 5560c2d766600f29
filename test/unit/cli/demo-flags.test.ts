/** The demo's command line goes through the CLI framework like every command: help, errors, exit codes. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const demo = join(dirname(fileURLToPath(import.meta.url)), '../../../src/cli/demo.js');
const run = (...args: string[]) => spawnSync(process.execPath, [demo, ...args], { encoding: 'utf8', timeout: 20_000 });

void describe('node dist/src/cli/demo.js flags', () => {
  void it('--help lists the three modes and exits 0 without running anything', () => {
    const r = run('--help');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Usage: demo \[flags\]/);
    for (const mode of ['local', 'current', 'node']) assert.match(r.stdout, new RegExp(`^  ${mode} +\\S`, 'm'));
    assert.match(r.stdout, /--cluster MODE .*\(default: local\)/);
  });

  const refusals: [string[], RegExp][] = [
    [['--cluster', 'bogus'], /^demo: --cluster: unknown mode "bogus"; allowed: local, current, node/],
    [['--cluster'], /^demo: --cluster needs a value/],
    [['--bogus'], /^demo: unknown flag --bogus/],
  ];
  for (const [args, message] of refusals) {
    void it(`${args.join(' ')}: exit 2, one line that says what to fix`, () => {
      const r = run(...args);
      assert.equal(r.status, 2);
      assert.match(r.stderr, message);
      assert.match(r.stderr, /\(run 'node dist\/src\/cli\/demo\.js --help'\)\n$/);
      assert.equal(r.stdout, '', 'nothing ran');
    });
  }
});
