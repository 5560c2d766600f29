/**
 * Deprecated flag spellings (CONTRIBUTING.md, "Flag names"): each still works for one release,
 * warns once naming the new flag, is listed as deprecated in --help, and given together with the
 * new flag at a different value is an error that says which to keep. Nothing in the repository
 * itself passes a deprecated spelling.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineCommand } from '../../../src/cli/framework/command.js';
import { CommandRegistry, type ProgramContext } from '../../../src/cli/framework/registry.js';
import { dcctlCommands } from '../../../src/cli/dcctl.js';
import { dcOperatorCommands } from '../../../src/cli/dc-operator.js';
import { ConfigError, resolveFlagValues, SIDECAR_FLAGS, type FlagSpec } from '../../../src/sidecar/config.js';

interface Run { code: number; out: string; err: string }

async function run(registry: CommandRegistry, argv: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<Run> {
  let out = '';
  let err = '';
  const ctx: ProgramContext = { stdout: (t) => void (out += t), stderr: (t) => void (err += t), cwd: opts.cwd ?? '/', env: opts.env ?? {}, now: () => new Date() };
  const code = await registry.run(argv, ctx);
  return { code, out, err };
}

const warnings = (err: string): string[] => err.split('\n').filter((l) => /deprecated/.test(l));

/** A command with one renamed string flag, one renamed list flag and one renamed boolean. */
function testProgram(seen: Array<Record<string, unknown>>): CommandRegistry {
  return new CommandRegistry({ name: 't', summary: 'test' }).register(
    defineCommand({
      path: ['go'],
      summary: 'test command',
      options: {
        address: { type: 'string', value: 'IP', description: 'listen here', default: '127.0.0.1', deprecatedAliases: ['host'] },
        namespace: { type: 'string', multiple: true, value: 'NS', description: 'watch these', deprecatedAliases: ['watch'] },
        quiet: { type: 'boolean', description: 'say less', deprecatedAliases: ['silent'] },
      },
      validate: (v) => v,
      run(v) {
        seen.push({ ...v });
        return Promise.resolve(0);
      },
    }),
  );
}

void test('a deprecated spelling sets the new flag and warns once, naming the new flag', async () => {
  const seen: Array<Record<string, unknown>> = [];
  const r = await run(testProgram(seen), ['go', '--host', '::1', '--silent']);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(seen[0], { address: '::1', namespace: [], quiet: true });
  assert.deepEqual(warnings(r.err), [
    't go: warning: --host is deprecated and will be removed in the next release; use --address',
    't go: warning: --silent is deprecated and will be removed in the next release; use --quiet',
  ]);
});

void test('the new spelling alone prints nothing and the default still applies', async () => {
  const seen: Array<Record<string, unknown>> = [];
  const r = await run(testProgram(seen), ['go', '--quiet']);
  assert.equal(r.code, 0);
  assert.equal(r.err, '');
  assert.deepEqual(seen[0], { address: '127.0.0.1', namespace: [], quiet: true });
});

void test('old and new with different values is a usage error that says which to keep', async () => {
  const seen: Array<Record<string, unknown>> = [];
  const r = await run(testProgram(seen), ['go', '--host', '::1', '--address', '10.0.0.1']);
  assert.equal(r.code, 2);
  assert.match(r.err, /--host \(deprecated\) and --address are both given with different values; keep --address and drop --host/);
  assert.equal(seen.length, 0, 'nothing ran');
  const same = await run(testProgram(seen), ['go', '--host', '::1', '--address', '::1']);
  assert.equal(same.code, 0, 'the same value twice is no conflict');
  assert.equal(warnings(same.err).length, 1);
});

void test('a repeatable flag collects values from both spellings', async () => {
  const seen: Array<Record<string, unknown>> = [];
  const r = await run(testProgram(seen), ['go', '--namespace', 'a', '--watch', 'b', '--watch', 'c']);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(seen[0]?.['namespace'], ['a', 'b', 'c']);
  assert.equal(warnings(r.err).length, 1, 'one warning however often the old spelling is repeated');
});

void test('--help lists each deprecated spelling with its replacement', async () => {
  const r = await run(testProgram([]), ['go', '--help']);
  assert.match(r.out, /--host IP +deprecated: use --address/);
  assert.match(r.out, /--watch NS +deprecated: use --namespace/);
  assert.match(r.out, /--silent +deprecated: use --quiet/);
});

// --- the real renames ---------------------------------------------------------------------------

const EXPECTED_RENAMES: Record<string, Array<[string, string]>> = {
  'dcctl cert create': [['ca', 'ca-dir']],
  'dcctl serve': [['host', 'address']],
  'dc-operator webhook': [['namespace', 'operator-namespace']],
  'dc-operator sidecar': [['metrics-host', 'metrics-address']],
};

const ALL_COMMANDS = [await dcctlCommands(), await dcOperatorCommands()].flatMap((registry) =>
  registry.list().map((c) => ({ name: [registry.program.name, ...c.path].join(' '), aliases: c.deprecatedAliases, help: c.help(registry.program.name) })),
);
const allCommands = () => ALL_COMMANDS;

void test('the renames of CONTRIBUTING.md are the deprecated aliases of the commands, each in --help', () => {
  const found = Object.fromEntries(allCommands().filter((c) => c.aliases.length > 0).map((c) => [c.name, c.aliases.map(([a, f]) => [a, f])]));
  assert.deepEqual(found, EXPECTED_RENAMES);
  for (const c of allCommands()) for (const [alias, flag] of c.aliases) assert.match(c.help, new RegExp(`--${alias}\\b.*deprecated: use --${flag}`), c.name);
});

void test('dcctl cert create --ca DIR still works, warns once, and conflicts with a different --ca-dir', async () => {
  const work = await mkdtemp(join(tmpdir(), 'dc-flag-names-'));
  try {
    assert.equal((await run(await dcctlCommands(), ['ca', 'create', '--out', 'ca'], { cwd: work })).code, 0);
    const old = await run(await dcctlCommands(), ['cert', 'create', '--ca', 'ca', '--dns', 'a.test', '--out', 'leaf'], { cwd: work });
    assert.equal(old.code, 0, old.err);
    assert.ok(existsSync(join(work, 'leaf', 'tls.crt')));
    assert.deepEqual(warnings(old.err), ['dcctl cert create: warning: --ca is deprecated and will be removed in the next release; use --ca-dir']);
    const both = await run(await dcctlCommands(), ['cert', 'create', '--ca', 'ca', '--ca-dir', 'other', '--dns', 'a.test', '--out', 'leaf2'], { cwd: work });
    assert.equal(both.code, 2);
    assert.match(both.err, /keep --ca-dir and drop --ca/);
    assert.ok(!existsSync(join(work, 'leaf2')), 'nothing written');
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});

void test('dc-operator webhook --namespace still names the operator namespace, with one warning', async () => {
  const r = await run(await dcOperatorCommands(), ['webhook', '--namespace', 'ops', '--print-configuration']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /namespace: ops/);
  assert.deepEqual(warnings(r.err), ['dc-operator webhook: warning: --namespace is deprecated and will be removed in the next release; use --operator-namespace']);
  const both = await run(await dcOperatorCommands(), ['webhook', '--namespace', 'ops', '--operator-namespace', 'dc', '--print-configuration']);
  assert.equal(both.code, 2);
  assert.match(both.err, /keep --operator-namespace and drop --namespace/);
});

void test('dcctl serve --host conflicts with a different --address before anything listens', async () => {
  const r = await run(await dcctlCommands(), ['serve', '--cert', 'x', '--key', 'y', '--host', '127.0.0.1', '--address', '::1']);
  assert.equal(r.code, 2);
  assert.match(r.err, /keep --address and drop --host/);
  const bad = await run(await dcctlCommands(), ['serve', '--cert', 'x', '--key', 'y', '--host', 'nowhere']);
  assert.match(bad.err, /--address: "nowhere" is not an IPv4 or IPv6 address/, 'the old spelling is validated as the new flag');
});

void test('dc-operator sidecar --metrics-host conflicts with a different --metrics-address', async () => {
  const r = await run(await dcOperatorCommands(), ['sidecar', '--metrics-host', '127.0.0.1', '--metrics-address', '::1']);
  assert.equal(r.code, 2);
  assert.match(r.err, /keep --metrics-address and drop --metrics-host/);
});

void test('sidecar environment variables follow the renames: the old variable works, warns once, conflicts', () => {
  const lines: string[] = [];
  const values = resolveFlagValues({}, { DC_SIDECAR_METRICS_HOST: '127.0.0.1' }, (l) => lines.push(l));
  assert.equal(values['metrics-address'], '127.0.0.1');
  assert.deepEqual(lines, ['warning: DC_SIDECAR_METRICS_HOST is deprecated and will be removed in the next release; use DC_SIDECAR_METRICS_ADDRESS']);
  assert.equal(resolveFlagValues({}, { DC_SIDECAR_METRICS_ADDRESS: '::1' }, (l) => lines.push(l))['metrics-address'], '::1');
  assert.equal(lines.length, 1, 'the new variable alone prints nothing');
  assert.equal(resolveFlagValues({ 'metrics-address': '10.0.0.1' }, { DC_SIDECAR_METRICS_HOST: '127.0.0.1' })['metrics-address'], '10.0.0.1', 'a flag still wins');
  assert.throws(
    () => resolveFlagValues({}, { DC_SIDECAR_METRICS_HOST: '127.0.0.1', DC_SIDECAR_METRICS_ADDRESS: '::1' }),
    (e: unknown) => e instanceof ConfigError && /keep DC_SIDECAR_METRICS_ADDRESS and unset DC_SIDECAR_METRICS_HOST/.test(e.message),
  );
});

void test('the sidecar --listen [HOST]:PORT (and DC_SIDECAR_LISTEN) fills --address and --port, warns once, conflicts', () => {
  const lines: string[] = [];
  const flag = resolveFlagValues({ listen: '127.0.0.1:9443' }, {}, (l) => lines.push(l));
  assert.deepEqual([flag['address'], flag['port'], flag['listen']], ['127.0.0.1', '9443', undefined]);
  assert.deepEqual(lines, ['warning: --listen is deprecated and will be removed in the next release; use --address and --port']);
  const all = resolveFlagValues({ listen: ':8443', port: '8443' }, {});
  assert.deepEqual([all['address'], all['port']], ['', '8443'], 'an empty host is all interfaces, the same value twice no conflict');
  const env = resolveFlagValues({ port: '1' }, { DC_SIDECAR_LISTEN: '[::1]:2' }, (l) => lines.push(l));
  assert.deepEqual([env['address'], env['port']], ['::1', '1'], 'a flag wins over the old variable');
  assert.match(lines[1] ?? '', /DC_SIDECAR_LISTEN is deprecated .*use DC_SIDECAR_ADDRESS and DC_SIDECAR_PORT/);
  assert.throws(() => resolveFlagValues({ listen: ':8443', port: '9443' }, {}), /--listen \(deprecated\) and --port are both given with different values; keep --port and drop --listen/);
  assert.throws(() => resolveFlagValues({}, { DC_SIDECAR_LISTEN: '127.0.0.1:1', DC_SIDECAR_ADDRESS: '::1' }), /keep DC_SIDECAR_ADDRESS and drop DC_SIDECAR_LISTEN/);
  assert.throws(() => resolveFlagValues({ listen: '8443' }, {}), /--listen: "8443" is not \[HOST\]:PORT/);
});

// --- nothing in the repository uses a deprecated spelling ---------------------------------------

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
const SCANNED = ['charts', 'manifests', 'src', 'test', 'bench', 'scripts', 'docs', 'README.md', 'Makefile'];
const THIS_FILE = 'test/unit/cli/flag-names.test.ts';
/** Where the sidecar's old flag and variable names are declared. */
const SIDECAR_TABLE = 'src/sidecar/config.ts';

async function* textFiles(path: string): AsyncGenerator<string> {
  const entries = await readdir(path, { withFileTypes: true }).catch(() => undefined);
  if (!entries) {
    if (existsSync(path)) yield path;
    return;
  }
  for (const e of entries) {
    if (e.name === 'node_modules' || e.name === 'dist' || e.name.startsWith('.')) continue;
    const p = join(path, e.name);
    if (e.isDirectory()) yield* textFiles(p);
    else if (/\.(ts|mjs|js|sh|ya?ml|tpl|txt|md|json)$|^Makefile$/.test(e.name)) yield p;
  }
}

/** Words on a line (or in a chart file name) that say which command its flags belong to. */
function commandPattern(name: string): RegExp {
  const words = name.split(' ').slice(1);
  return new RegExp(`${words.join(' ')}|'${words.join("', '")}'|"${words.join('", "')}"`);
}

void test('charts, manifests, src, tests, benches, scripts and docs use no deprecated spelling', async () => {
  // A spelling that no command still has as a flag is deprecated everywhere; one another command
  // still uses (--namespace, --ca) only where the line or chart file names the renamed command.
  const rules = allCommands().flatMap((c) => c.aliases.map(([alias, flag]) => ({ command: c.name, alias, flag, everywhere: !allCommands().some((o) => o.name !== c.name && o.help.includes(`--${alias} `)) })));
  assert.equal(rules.length, 4);
  // The sidecar's --listen fills two flags, so it is an option of its own rather than an alias.
  rules.push({ command: 'dc-operator sidecar', alias: 'listen', flag: 'address and --port', everywhere: true });
  const deprecatedEnv = [
    ...(SIDECAR_FLAGS as readonly FlagSpec[]).flatMap((f) => (f.deprecatedEnv ?? []).map((old) => ({ old, env: f.env }))),
    { old: 'DC_SIDECAR_LISTEN', env: 'DC_SIDECAR_ADDRESS and DC_SIDECAR_PORT' },
  ];
  const offenders: string[] = [];
  for (const root of SCANNED) {
    for await (const file of textFiles(join(repo, root))) {
      const rel = relative(repo, file);
      if (rel === THIS_FILE || rel === SIDECAR_TABLE) continue;
      const lines = (await readFile(file, 'utf8')).split('\n');
      lines.forEach((line, i) => {
        for (const r of rules) {
          if (!new RegExp(`--${r.alias}(?![\\w-])`).test(line)) continue;
          const context = r.everywhere || commandPattern(r.command).test(line) || (rel.startsWith('charts/') && rel.includes(r.command.split(' ').at(-1)!));
          if (context) offenders.push(`${rel}:${i + 1}: --${r.alias} (${r.command}: use --${r.flag})`);
        }
        for (const e of deprecatedEnv) {
          if (line.includes(e.old)) offenders.push(`${rel}:${i + 1}: ${e.old} (use ${e.env})`);
        }
      });
    }
  }
  assert.deepEqual(offenders, []);
});
