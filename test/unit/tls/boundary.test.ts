/**
 * src/tls is a self-contained TLS stack: nothing under it imports from the rest of the project,
 * so the sidecar, the operator, dcctl and the keyless code can all depend on it and never the
 * reverse. Checked on the TypeScript sources, by the relative specifiers of every import, export
 * and dynamic import.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { moduleSpecifiers, sourceFiles } from '../../support/sources.js';

// This file runs from dist/test/unit/tls/; the sources are in <repo>/src/tls.
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
const tlsRoot = join(repo, 'src', 'tls');

/** The relative specifiers of `file` that resolve outside src/tls. */
function escapes(file: string, source: string): string[] {
  return moduleSpecifiers(source, { runtimeOnly: false }).filter((s) => {
    if (!s.startsWith('.')) return false;
    const target = relative(tlsRoot, resolve(dirname(file), s));
    return target === '..' || target.startsWith(`..${sep}`);
  });
}

void describe('src/tls imports nothing from outside src/tls', () => {
  void it('finds the imports it checks (the scanner works)', () => {
    const file = join(tlsRoot, 'x509', 'example.ts');
    const source = [
      "import { a } from './der.js';",
      "import type { B } from '../alerts.js';",
      "export * from '../../keyless/ski.js';",
      "import { c,\n  d } from '../../signer/index.js';",
      "import '../../net/side-effect.js';",
      "const m = await import('../../cli/x.js');",
      "import { createHash } from 'node:crypto';",
    ].join('\n');
    assert.deepEqual(escapes(file, source).sort(), ['../../cli/x.js', '../../keyless/ski.js', '../../net/side-effect.js', '../../signer/index.js']);
  });

  void it('holds for every source file', () => {
    const files = sourceFiles(tlsRoot);
    assert.ok(files.length > 30, `only ${files.length} files under ${tlsRoot}`);
    const found = files.flatMap((f) => escapes(f, readFileSync(f, 'utf8')).map((s) => `${relative(repo, f)}: ${s}`));
    assert.deepEqual(found, []);
  });
});
