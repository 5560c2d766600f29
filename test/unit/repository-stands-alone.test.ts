/**
 * The repository stands alone: code, docs and benches cite only files that are in it. Rules a
 * maintainer needs live in docs/architecture.md and CONTRIBUTING.md; a reference to a planning
 * note outside the repository (a rule number of a style guide, a design document) points a
 * reader at nothing.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// This file runs from dist/test/unit/; the repository is three levels up.
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

const SCANNED_DIRS = ['src', 'test', 'bench', 'docs', 'scripts', 'charts', 'manifests', '.ci'];
const SCANNED_TOP_LEVEL = ['README.md', 'CONTRIBUTING.md', 'Makefile', 'Dockerfile', 'package.json'];
const TEXT = /\.(ts|mjs|js|md|sh|yaml|yml|json|tpl|txt|env)$|^[^.]+$/;

// Assembled from parts so that this file does not match itself.
const OUTSIDE_REFERENCES: readonly RegExp[] = [
  new RegExp(['style', '\\.md'].join('')),
  new RegExp(['\\(style', ' #\\d+'].join('')),
  new RegExp(['protocol', '-notes'].join('')),
  new RegExp(['design', '\\.md'].join('')),
  new RegExp(['owned by ', 'another engineer'].join('')),
];

function filesUnder(dir: string, out: string[]): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.dev')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) filesUnder(path, out);
    else if (TEXT.test(name)) out.push(path);
  }
  return out;
}

/** `path:line: text` for every line that refers to a file outside the repository. */
export function outsideReferences(path: string, text: string): string[] {
  const found: string[] = [];
  text.split('\n').forEach((line, i) => {
    if (OUTSIDE_REFERENCES.some((r) => r.test(line))) found.push(`${path}:${i + 1}: ${line.trim()}`);
  });
  return found;
}

void describe('the repository stands alone', () => {
  void it('recognises each kind of outside reference (the scanner works)', () => {
    const sample = ['ok line', `see ${'style'}.md #3`, `// (${'style'} #12) here`, `as ${'protocol'}-notes says`, `${'design'}.md §2`].join('\n');
    assert.deepEqual(
      outsideReferences('x.ts', sample).map((l) => l.split(':')[1]),
      ['2', '3', '4', '5'],
    );
  });

  void it('no file in the repository cites a planning note that is not in it', () => {
    const files = [
      ...SCANNED_DIRS.flatMap((d) => {
        const dir = join(repo, d);
        try {
          return filesUnder(dir, []);
        } catch {
          return [];
        }
      }),
      ...SCANNED_TOP_LEVEL.map((f) => join(repo, f)),
    ];
    assert.ok(files.length > 100, `expected to scan the repository's files, found ${files.length} under ${repo}`);
    const found = files.flatMap((f) => outsideReferences(relative(repo, f), readFileSync(f, 'utf8')));
    assert.deepEqual(found, [], 'write the rule into docs/architecture.md or CONTRIBUTING.md and cite that instead');
  });
});
