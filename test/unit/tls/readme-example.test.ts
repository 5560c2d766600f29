/**
 * The example in src/tls/README.md ("Use it from another project") is run as written, so it
 * cannot rot: the code block is extracted, type-checked with tsc against the package's own
 * exports (`dc-operator/tls`, `dc-operator/tls/delegated`, resolved by package self-reference
 * through package.json "exports" and the declarations npm run build writes), then run by node on a
 * certificate made by dcctl. It must finish on its own (server and client close) and print the
 * handshake's authentication and the server's greeting.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
const MARKER = '<!-- example: serve-a-delegated-credential';

/** The first ```ts block after the marker comment. */
function exampleBlock(readme: string): string {
  const at = readme.indexOf(MARKER);
  assert.ok(at >= 0, 'src/tls/README.md has the example marker');
  const block = /```ts\n([\s\S]*?)\n```/.exec(readme.slice(at));
  assert.ok(block, 'a ```ts block follows the marker');
  return `${block[1]}\n`;
}

void describe('src/tls/README.md example', () => {
  let work: string;
  let pki: string;
  let example: string;

  before(() => {
    // Inside the package, so 'dc-operator/tls' resolves to this checkout (self-reference).
    work = mkdtempSync(join(repo, 'dist', '.readme-example-'));
    example = join(work, 'example.mts');
    writeFileSync(example, exampleBlock(readFileSync(join(repo, 'src', 'tls', 'README.md'), 'utf8')));
    pki = mkdtempSync(join(tmpdir(), 'dc-readme-'));
    const dcctl = (...args: string[]): void => {
      const r = spawnSync(process.execPath, [join(repo, 'dist', 'src', 'cli', 'dcctl.js'), ...args], { cwd: pki, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
    };
    dcctl('ca', 'create', '--out', 'ca');
    dcctl('cert', 'create', '--ca-dir', 'ca', '--dns', 'localhost', '--out', 'localhost');
  });
  after(() => {
    rmSync(work, { recursive: true, force: true });
    rmSync(pki, { recursive: true, force: true });
  });

  void it('type-checks against the exported declarations', () => {
    const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = spawnSync(
      process.execPath,
      [tsc, '--noEmit', '--strict', '--noUncheckedIndexedAccess', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2024', '--types', 'node', '--skipLibCheck', example],
      { cwd: repo, encoding: 'utf8', timeout: 120_000 },
    );
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`);
  });

  void it('serves a delegated credential over a socket and exits on its own', () => {
    const r = spawnSync(process.execPath, [example, join(pki, 'localhost')], { cwd: repo, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.split('\n').filter((l) => l !== '').sort(), ['hello over a delegated credential', 'server authenticated with delegated-credential']);
  });
});
