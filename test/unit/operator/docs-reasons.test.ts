/**
 * docs/api.md lists, per condition type, exactly the reasons the controller sets. The reasons are
 * read from the sources (the FailureReason and TriggerReason unions, the literals of status.ts and
 * fallback.ts, the failures thrown as the signer's) so that a reason added to the code without a
 * row in the docs, or a row left behind for a reason the code no longer sets, fails here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../support/control-plane.js';
import { SIGNER_FAILURES } from '../../../src/operator/status.js';

const operatorDir = join(repoRoot, 'src', 'operator');
const source = (file: string): string => readFileSync(join(operatorDir, file), 'utf8');
const quoted = (text: string): string[] => [...text.matchAll(/'(\w+)'/g)].map((m) => m[1] ?? '');
const sorted = (xs: Iterable<string>): string[] => [...new Set(xs)].sort();

function union(file: string, name: string): string[] {
  const m = new RegExp(`export type ${name} =([^;]+);`).exec(source(file));
  assert.ok(m, `${name} in src/operator/${file}`);
  return quoted(m[1] ?? '');
}

/** Literal reasons of `{ type: 'T', status: 'S', reason: '...' }` in status.ts. */
function statusLiterals(type: string, status: string): string[] {
  return [...source('status.ts').matchAll(new RegExp(`type: '${type}', status: '${status}', reason: [^,]*?'(\\w+)'`, 'g'))].map((m) => m[1] ?? '');
}

/** Reasons of ReconcileFailures thrown as the signer's (`{ signer: true }`), in every module. */
function signerThrown(): string[] {
  const out: string[] = [];
  for (const f of readdirSync(operatorDir).filter((n) => n.endsWith('.ts'))) {
    for (const m of source(f).matchAll(/new ReconcileFailure\('(\w+)',((?:[^;]|;(?=[^\n]*`))*?)\);/g)) if (/signer: true/.test(m[2] ?? '')) out.push(m[1] ?? '');
    for (const m of source(f).matchAll(/signerFailure\(plan, '(\w+)'/g)) out.push(m[1] ?? '');
  }
  return out;
}

/** The `| status | \`Reason\` |` rows under the docs/api.md heading `#### <heading>`, per status. */
function documented(heading: string): Map<string, string[]> {
  const doc = readFileSync(join(repoRoot, 'docs', 'api.md'), 'utf8');
  const start = doc.indexOf(`#### ${heading}\n`);
  assert.ok(start >= 0, `docs/api.md has a section "#### ${heading}"`);
  const rest = doc.slice(start + 1);
  const end = rest.search(/\n###/);
  const section = end < 0 ? rest : rest.slice(0, end);
  const rows = new Map<string, string[]>();
  for (const m of section.matchAll(/^\| (True|False|Unknown) \| `(\w+)` \|/gm)) rows.set(m[1] ?? '', [...(rows.get(m[1] ?? '') ?? []), m[2] ?? '']);
  return rows;
}

void test('docs/api.md lists exactly the reasons of Ready the controller sets', () => {
  const docs = documented('`Ready`');
  const advisory = /export interface Advisory \{\s*reason: ([^;]+);/.exec(source('status.ts'));
  assert.ok(advisory);
  assert.deepEqual(sorted(docs.get('True') ?? []), sorted([...statusLiterals('Ready', 'True'), ...quoted(advisory[1] ?? '')]), 'Ready=True');
  assert.deepEqual(sorted(docs.get('False') ?? []), sorted(union('status.ts', 'FailureReason')), 'Ready=False: every FailureReason of status.ts');
});

void test('docs/api.md lists exactly the reasons of SignerReady: the signer failures and those thrown as the signer\'s', () => {
  const docs = documented('`SignerReady`');
  assert.deepEqual(sorted(docs.get('True') ?? []), sorted(statusLiterals('SignerReady', 'True')), 'SignerReady=True');
  assert.deepEqual(sorted(docs.get('False') ?? []), sorted([...SIGNER_FAILURES, ...signerThrown()]), 'SignerReady=False');
});

void test('docs/api.md lists exactly the reasons of Issuing: every trigger, UpToDate and Blocked', () => {
  const docs = documented('`Issuing`');
  assert.deepEqual(sorted(docs.get('True') ?? []), sorted(union('triggers.ts', 'TriggerReason')), 'Issuing=True');
  assert.deepEqual(sorted(docs.get('False') ?? []), sorted(statusLiterals('Issuing', 'False')), 'Issuing=False');
});

void test('docs/api.md lists exactly the reasons of FallbackReady that fallback.ts sets', () => {
  const docs = documented('`FallbackReady`');
  const code = quoted([...source('fallback.ts').matchAll(/reason: ('\w+')/g)].map((m) => m[1]).join(' '));
  assert.deepEqual(sorted([...docs.values()].flat()), sorted(code));
});

void test('docs/api.md lists the reasons of a signer\'s own Ready', () => {
  const docs = [...documented('Signer `Ready`').values()].flat();
  const code: string[] = [];
  for (const f of readdirSync(operatorDir).filter((n) => n.endsWith('.ts'))) {
    for (const m of source(f).matchAll(/ready: (?:true|false), reason: '(\w+)'/g)) code.push(m[1] ?? '');
    // keyless.ts reports the failures it throws as the signer's health too.
    for (const m of source(f).matchAll(/signerFailure\(plan, '(\w+)'/g)) code.push(m[1] ?? '');
  }
  assert.ok(code.length >= 3, `found the signer health reasons: ${code.join(', ')}`);
  for (const reason of code) assert.ok(docs.includes(reason), `${reason} documented under "Signer \`Ready\`"`);
  // The in-cluster key's failures reach it too (reconciler.ts loadSigner: err.reason).
  const failures = union('status.ts', 'FailureReason');
  for (const reason of docs) assert.ok(code.includes(reason) || failures.includes(reason), `${reason} is a reason the code sets`);
});
