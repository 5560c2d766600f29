/**
 * `make fuzz` and `make fuzz-repro`:
 *
 *   node dist/test/fuzz/cli.js run [--target a,b] [--seconds 60] [--seed N]
 *   node dist/test/fuzz/cli.js repro --target T --input FILE
 *
 * `run` fuzzes each target in turn for `--seconds`, keeps new inputs in .dev/fuzz/corpus/<target>/,
 * prints one summary line per target and exits 1 if any crashed. `repro` runs one input once,
 * in this process, and prints what it threw.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { isTargetName, loadTarget, TARGETS, workCorpus, type TargetName } from './protocol.js';
import { runTarget } from './runner.js';

function targetsFrom(list: string | undefined): TargetName[] {
  if (!list) return [...TARGETS];
  const names = list.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  for (const n of names) {
    if (!isTargetName(n)) throw new Error(`unknown target ${n}; targets: ${TARGETS.join(', ')}`);
  }
  return names as TargetName[];
}

async function run(values: { target?: string | undefined; seconds?: string | undefined; seed?: string | undefined }): Promise<number> {
  const seconds = Number(values.seconds ?? '60');
  if (!Number.isFinite(seconds) || seconds <= 0) throw new Error(`--seconds must be a positive number, not ${values.seconds}`);
  const targets = targetsFrom(values.target);
  let crashed = 0;
  const summaries: string[] = [];
  for (const t of targets) {
    console.log(`== fuzz ${t} for ${seconds} s`);
    const r = await runTarget(t, {
      seconds,
      ...(values.seed !== undefined ? { seed: Number(values.seed) } : {}),
      extraCorpus: [workCorpus(t)],
      saveDir: workCorpus(t),
      reportEveryMs: 10_000,
      onProgress: (line) => console.log(line),
    });
    console.log(r.summary);
    if (r.crash) {
      crashed++;
      console.log(r.crash.error);
    }
    summaries.push(r.summary);
  }
  console.log(`\n${summaries.join('\n')}`);
  console.log(`fuzz: ${targets.length - crashed} passed, ${crashed} failed`);
  return crashed > 0 ? 1 : 0;
}

async function repro(values: { target?: string | undefined; input?: string | undefined }): Promise<number> {
  const [name] = targetsFrom(values.target);
  if (!values.target || !name || !values.input) throw new Error('usage: repro --target T --input FILE');
  const target = await loadTarget(name);
  await target.setup?.();
  const input = new Uint8Array(readFileSync(values.input));
  console.log(`${name}: ${input.length} bytes from ${values.input}: ${Buffer.from(input.subarray(0, 64)).toString('hex')}${input.length > 64 ? '...' : ''}`);
  try {
    await target.run(input);
    console.log(`${name}: returned normally: no crash`);
    return 0;
  } catch (e) {
    if (target.expected(e)) {
      console.log(`${name}: threw an expected ${e instanceof Error ? e.name : typeof e}: ${e instanceof Error ? e.message : String(e)}: no crash`);
      return 0;
    }
    console.log(`${name}: CRASH`);
    console.log(e instanceof Error ? (e.stack ?? e.message) : e);
    return 1;
  }
}

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { target: { type: 'string' }, seconds: { type: 'string' }, seed: { type: 'string' }, input: { type: 'string' } },
});
const command = positionals[0] ?? 'run';
try {
  process.exitCode = command === 'repro' ? await repro(values) : await run(values);
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 2;
}
