/**
 * The image installs `dependencies` only (Dockerfile: npm ci --omit=dev), so every package that
 * code under src/ imports at runtime must be there, and a package only tests, benches and scripts
 * use belongs in devDependencies. Type-only imports (`import type`) do not count: tsc erases them.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { moduleSpecifiers, sourceFiles } from '../support/sources.js';

// This file runs from dist/test/unit/.
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };

/** Packages a file loads at runtime, by package name (`@scope/name` or `name`). */
function runtimePackages(source: string): string[] {
  return moduleSpecifiers(source, { runtimeOnly: true })
    .filter((s) => !s.startsWith('.') && !s.startsWith('node:') && !builtinModules.includes(s))
    .map((s) => (s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!));
}

function importers(dir: string): Map<string, string[]> {
  const by = new Map<string, string[]>();
  for (const file of sourceFiles(join(repo, dir))) {
    for (const p of runtimePackages(readFileSync(file, 'utf8'))) by.set(p, [...(by.get(p) ?? []), relative(repo, file)]);
  }
  return by;
}

void it('every package src/ imports at runtime is a dependency, not a devDependency', () => {
  const missing = [...importers('src')].filter(([p]) => !(p in pkg.dependencies)).map(([p, files]) => `${p} (imported by ${files[0]})`);
  assert.deepEqual(missing, []);
});

void it('every dependency is imported by src/', () => {
  const fromSrc = importers('src');
  const unused = Object.keys(pkg.dependencies).filter((p) => !fromSrc.has(p));
  assert.deepEqual(unused, [], 'a dependency nothing under src/ imports: move it to devDependencies or remove it');
});

void it('counts runtime imports only (the scanner works)', () => {
  const source = [
    "import { a } from '@scope/pkg/sub.js';",
    "import type { B } from 'types-only';",
    "export type { C } from 'types-too';",
    "import { d,\n  e } from 'multi-line';",
    "import 'side-effect';",
    "const m = await import('dynamic');",
    "const lazy = (): Mod => createRequire(import.meta.url)('required-lazily') as Mod;",
    "import { readFile } from 'node:fs/promises';",
    "import { x } from './local.js';",
    "const s = 'import\\'];';",
  ].join('\n');
  assert.deepEqual(runtimePackages(source).sort(), ['@scope/pkg', 'dynamic', 'multi-line', 'required-lazily', 'side-effect']);
});
