// Writes crds/*.yaml from the TypeScript API (`make crds`). With --check, exits 1 when a file
// differs, so CI can tell a stale crds/ folder from a fresh one.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderCrdFiles } from './crds.js';

/** The repository root, from dist/src/operator/api/ or src/operator/api/. */
export function repoRoot(): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const up = here.includes(`${join('dist', 'src')}`) ? '../../../..' : '../../..';
  return resolve(here, up);
}

/** Names of the files in crds/ whose content differs from what the API generates. */
export function staleCrdFiles(dir = join(repoRoot(), 'crds')): string[] {
  const stale: string[] = [];
  for (const [name, text] of renderCrdFiles()) {
    let current = '';
    try {
      current = readFileSync(join(dir, name), 'utf8');
    } catch {
      // missing counts as stale
    }
    if (current !== text) stale.push(name);
  }
  return stale;
}

function main(argv: string[]): number {
  const dir = join(repoRoot(), 'crds');
  if (argv.includes('--check')) {
    const stale = staleCrdFiles(dir);
    if (stale.length > 0) {
      console.error(`crds/ is stale (${stale.join(', ')}): run make crds`);
      return 1;
    }
    return 0;
  }
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of renderCrdFiles()) writeFileSync(join(dir, name), text);
  console.log(`wrote ${[...renderCrdFiles().keys()].map((n) => `crds/${n}`).join(', ')}`);
  return 0;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2));
}
