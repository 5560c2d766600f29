// scripts/e2e/image.sh builds the project's image without Docker for the real node of `make e2e`.
// It must say what the Dockerfile's runtime stage says: entrypoint, command, user, working
// directory, environment, the dc-operator/dcctl links and the /app layout.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../support/control-plane.js';
import { parseDockerfile, type Stage } from '../support/dockerfile.js';

const runtime = parseDockerfile(readFileSync(join(repoRoot, 'Dockerfile'), 'utf8')).at(-1) as Stage;
const dockerfile = (op: string): string[] => runtime.instructions.filter((i) => i.op === op).map((i) => i.args);
// The project's image only: the part of image.sh before the pause image.
const script = (readFileSync(join(repoRoot, 'scripts', 'e2e', 'image.sh'), 'utf8').split('# --- pause')[0] ?? '').replace(/\\\n\s*/g, ' ');
/** The values image.sh gives one `umoci config` flag, in order. */
const flag = (name: string): string[] => [...script.matchAll(new RegExp(`--config\\.${name} ("[^"]*"|\\S+)`, 'g'))].map((m) => (m[1] ?? '').replace(/^"|"$/g, ''));

test('entrypoint and command are the Dockerfile\'s', () => {
  assert.deepEqual(flag('entrypoint'), JSON.parse(dockerfile('ENTRYPOINT').at(-1) ?? '[]'));
  assert.deepEqual(flag('cmd'), JSON.parse(dockerfile('CMD').at(-1) ?? '[]'));
});

test('user and working directory are the Dockerfile\'s', () => {
  assert.deepEqual(flag('user'), [dockerfile('USER').at(-1)]);
  assert.deepEqual(flag('workingdir'), [dockerfile('WORKDIR').at(-1)]);
});

test('the environment has the Dockerfile\'s variables (and the node image\'s PATH)', () => {
  const want = dockerfile('ENV').flatMap((e) => e.split(/\s+/)).map((kv) => kv.split('=')[0]).sort();
  const have = flag('env').map((kv) => kv.split('=')[0]).filter((k) => k !== 'PATH').sort();
  assert.deepEqual(have, want);
  assert.ok(flag('env').includes('NODE_ENV=production'));
});

test('the same /app layout and the same links on PATH', () => {
  const run = dockerfile('RUN').join(' ');
  for (const link of [...run.matchAll(/ln -s (\S+) (\S+)/g)]) {
    assert.ok(script.includes(`ln -s ${link[1]} "$work/bundle/rootfs${link[2]}"`), `image.sh lacks the link ${link[2]} -> ${link[1]}`);
  }
  // Where image.sh fills each path the runtime stage copies in.
  const filledBy: Record<string, string> = {
    '/app/package.json': 'cp "$work/deps/package.json" "$work/bundle/rootfs/app/package.json"',
    '/app/node_modules': 'cp -a "$work/deps/node_modules" "$work/bundle/rootfs/app/node_modules"',
    '/app/dist/src': 'cp -a "$root/dist/src" "$out_dir/app/dist/src"',
  };
  const copied = dockerfile('COPY').filter((c) => c.startsWith('--from=')).map((c) => `/app/${(c.split(/\s+/).at(-1) ?? '').replace(/^\.\//, '')}`);
  assert.deepEqual(copied.sort(), Object.keys(filledBy).sort());
  for (const evidence of Object.values(filledBy)) assert.ok(script.includes(evidence), `image.sh lacks: ${evidence}`);
  assert.ok(script.includes('umoci insert --image "$oci:base" "$out_dir/app/dist" /app/dist'));
  assert.match(script, /npm ci --omit=dev/);
});
