// The executables enable Node's compile cache from their entry point: in the user's own cache
// directory unless NODE_COMPILE_CACHE names one (the image), never in a shared one.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../../support/control-plane.js';
import { userCompileCacheDir } from '../../../src/cli/framework/compile-cache.js';

void describe('userCompileCacheDir', () => {
  void it('is under $XDG_CACHE_HOME, else ~/.cache', () => {
    assert.equal(userCompileCacheDir({ XDG_CACHE_HOME: '/x/cache' }, () => '/home/a'), '/x/cache/dc-operator/node-compile-cache');
    assert.equal(userCompileCacheDir({}, () => '/home/a'), '/home/a/.cache/dc-operator/node-compile-cache');
    assert.equal(userCompileCacheDir({ XDG_CACHE_HOME: 'relative' }, () => '/home/a'), '/home/a/.cache/dc-operator/node-compile-cache', 'a relative XDG_CACHE_HOME is ignored, as the spec says');
  });

  void it('is none for a user without a home (HOME=/ or no passwd entry): no cache at the root', () => {
    assert.equal(userCompileCacheDir({}, () => '/'), undefined);
    assert.equal(userCompileCacheDir({}, () => ''), undefined);
    assert.equal(userCompileCacheDir({}, () => { throw new Error('no home'); }), undefined);
  });
});

void describe('the entry points enable the cache', () => {
  const run = (script: string, env: NodeJS.ProcessEnv): { code: number | null; stderr: string } => {
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('NODE_COMPILE_CACHE') && k !== 'XDG_CACHE_HOME' && k !== 'NODE_DISABLE_COMPILE_CACHE'));
    const r = spawnSync(process.execPath, [join('dist/src/cli', script), '--help'], { cwd: repoRoot, encoding: 'utf8', timeout: 30_000, maxBuffer: 64 << 20, env: { ...clean, NODE_DEBUG_NATIVE: 'COMPILE_CACHE', ...env } });
    return { code: r.status, stderr: r.stderr };
  };
  const readFromCache = (stderr: string): number => stderr.split('\n').filter((l) => l.includes('] reading cache from ') && l.includes('... success')).length;

  for (const script of ['dc-operator.js', 'dcctl.js']) {
    void it(`${script}: the commands' modules go to the user's cache on the first run and come from it on the next`, () => {
      const home = mkdtempSync(join(tmpdir(), 'dc-home-'));
      try {
        const first = run(script, { HOME: home });
        assert.equal(first.code, 0, first.stderr.slice(-500));
        const dir = join(home, '.cache', 'dc-operator', 'node-compile-cache');
        const tags = readdirSync(dir);
        assert.equal(tags.length, 1);
        assert.ok(readdirSync(join(dir, tags[0]!)).length > 20, 'the commands\' modules are cached');
        const second = run(script, { HOME: home });
        assert.equal(second.code, 0);
        assert.ok(readFromCache(second.stderr) > 20, `modules read from the cache: ${readFromCache(second.stderr)}`);
      } finally {
        rmSync(home, { recursive: true, force: true });
      }
    });
  }

  void it('NODE_DISABLE_COMPILE_CACHE=1 turns it off; NODE_COMPILE_CACHE moves it', () => {
    const home = mkdtempSync(join(tmpdir(), 'dc-home-'));
    try {
      assert.equal(run('dc-operator.js', { HOME: home, NODE_DISABLE_COMPILE_CACHE: '1' }).code, 0);
      assert.deepEqual(readdirSync(home), [], 'nothing written');
      const elsewhere = join(home, 'elsewhere');
      assert.equal(run('dc-operator.js', { HOME: home, NODE_COMPILE_CACHE: elsewhere }).code, 0);
      assert.deepEqual(readdirSync(home), ['elsewhere']);
      assert.equal(readdirSync(elsewhere).length, 1);
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
  });
});
