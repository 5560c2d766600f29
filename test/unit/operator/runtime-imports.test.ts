// The controller and the in-cluster key server talk to the apiserver through their own client
// (src/operator/apiserver): loading @kubernetes/client-node costs a process ~72 MiB of RSS
// (bench/results/operator.md). This fails when a module their entry points import at run time
// (a value import; `import type` is erased) reaches client-node again. The import is run in a
// fresh process with a module hook that records every module loaded.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';

const RECORD = `
import { registerHooks } from 'node:module';
const loaded = [];
registerHooks({ load(url, context, next) { loaded.push(url); return next(url, context); } });
await import(process.argv[1]);
process.stdout.write(JSON.stringify(loaded));
`;

function modulesLoadedBy(entry: string): string[] {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', RECORD, new URL(entry, import.meta.url).href], { encoding: 'utf8', timeout: 60_000 });
  return JSON.parse(out) as string[];
}

for (const [command, entry, own] of [
  ['controller', '../../../src/cli/commands/controller.js', 'src/operator/main.js'],
  ['keyserver', '../../../src/cli/commands/keyserver.js', 'src/keyserver/main.js'],
] as const) {
  void it(`dc-operator ${command}: its modules load no @kubernetes/client-node`, () => {
    const loaded = modulesLoadedBy(entry);
    assert.ok(loaded.some((u) => u.endsWith(own)), `the hook saw ${own} load (${loaded.length} modules)`);
    assert.ok(loaded.some((u) => u.endsWith('src/operator/apiserver/client.js')), 'and the apiserver client');
    const clientNode = loaded.filter((u) => u.includes('/@kubernetes/client-node/')).map((u) => fileURLToPath(u));
    assert.deepEqual(clientNode.slice(0, 5), [], `${clientNode.length} client-node modules loaded`);
    // Loaded on the first rotationSchedule (renewal.ts), not at start.
    assert.deepEqual(loaded.filter((u) => /\/node_modules\/(cron-parser|luxon)\//.test(u)), []);
  });
}

void it('the hook does see client-node where it is loaded (the webhook command keeps it)', () => {
  assert.ok(modulesLoadedBy('../../../src/cli/commands/webhook.js').some((u) => u.includes('/@kubernetes/client-node/')));
});

void it('dc-operator controller: its modules load no undici, node:http2 nor web streams (node:http is required, not imported: src/operator/node-http.ts)', () => {
  const script = `await import(process.argv[1]); process.stdout.write(JSON.stringify(process.moduleLoadList));`;
  const run = (entry: string): string[] =>
    JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script, entry], { encoding: 'utf8', timeout: 60_000 })) as string[];
  const unwanted = (list: string[]): string[] => list.filter((m) => /undici|NativeModule (internal\/)?http2|webstreams/.test(m));
  const loaded = run(new URL('../../../src/cli/commands/controller.js', import.meta.url).href);
  assert.ok(loaded.includes('NativeModule http'), 'node:http itself is loaded');
  assert.deepEqual(unwanted(loaded), []);
  // What this guards against: an ES module import of node:http loads them all.
  assert.ok(unwanted(run('node:http')).some((m) => m.includes('undici')));
});
