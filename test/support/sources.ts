// Reading the repository's TypeScript sources in tests that check a rule on all of them (the
// src/tls boundary, runtime dependencies, the one logger).
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

/** Every .ts file under `dir`, recursively. */
export function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.isFile() && e.name.endsWith('.ts') ? [path] : [];
  });
}

/**
 * Module specifiers of `import … from`, `export … from`, `import '…'` (at the start of a line),
 * `import('…')` and `createRequire(…)('…')`. `runtimeOnly` leaves out `import type` / `export
 * type`, which tsc erases.
 */
export function moduleSpecifiers(source: string, options: { runtimeOnly: boolean }): string[] {
  const from = options.runtimeOnly ? /\b(?:import|export)\s+(?!type\s)[^'"`;]*?\bfrom\s*(['"])([^'"\s]+)\1/g : /\b(?:import|export)\s[^'"`;]*?\bfrom\s*(['"])([^'"\s]+)\1/g;
  const out: string[] = [];
  // createRequire(...)('x'): a CommonJS package or builtin loaded on first use (src/operator/renewal.ts, node-http.ts).
  const required = /\bcreateRequire\([^()]*\)\(\s*(['"])([^'"\s]+)\1\s*\)/g;
  for (const re of [from, /^\s*import\s*(['"])([^'"\s]+)\1/gm, /\bimport\(\s*(['"])([^'"\s]+)\1\s*\)/g, required]) {
    for (const m of source.matchAll(re)) out.push(m[2]!);
  }
  return out;
}
