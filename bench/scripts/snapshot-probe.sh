#!/usr/bin/env bash
# Can a V8 startup snapshot (node --build-snapshot / --snapshot-blob) hold the sidecar, and would it
# move the first second's tier-up work before ready? bench/results/sidecar-perf.md, section 12.
#
#   npm run build && bash bench/scripts/snapshot-probe.sh [ESBUILD]
#
# 1. Each built-in module the sidecar imports at load time, alone in a snapshot builder script:
#    does --build-snapshot finish, and does the blob start?
# 2. With ESBUILD (the path of an esbuild binary; not a dependency of this project, e.g.
#    `npm install --prefix /tmp/esb esbuild`): `dc-operator sidecar`'s modules bundled into one
#    CommonJS script (a snapshot holds no ESM and no userland module graph), built into a snapshot
#    with the native addons on and with DC_TLS_NATIVE=off.
# 3. Whether a snapshot keeps V8's tier-up state: a function called 200,000 times while the
#    snapshot is built, then called in steps of 10 after it is restored, against one never called
#    before: when does Maglev compile it (--trace-opt)?
set -u
dist=$(cd "$(dirname "$0")/../../dist" && pwd)
work=$(mktemp -d /tmp/snapshot-probe-XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "# node $(node --version); $(date -u +%H:%MZ); load average $(cut -d' ' -f1-3 /proc/loadavg)"

echo "## 1. built-in modules alone in a snapshot"
for m in node:crypto node:net node:fs node:events node:stream node:perf_hooks node:module node:worker_threads node:http node:https node:tls; do
  printf "require('%s'); require('v8').startupSnapshot.setDeserializeMainFunction(() => console.log('started'));\n" "$m" >"$work/b.cjs"
  out=$(node --snapshot-blob "$work/b.blob" --build-snapshot "$work/b.cjs" 2>&1); rc=$?
  why=$(printf '%s\n' "$out" | grep -m1 -E 'global handle not serialized|Unknown external reference|Error' | cut -c1-80)
  run=$( [ $rc -eq 0 ] && node --snapshot-blob "$work/b.blob" 2>&1 | tail -1 || echo -)
  echo "$m: build exit $rc${why:+ ($why)}, start: $run"
  rm -f "$work/b.blob"
done

if [ $# -ge 1 ]; then
  echo "## 2. the sidecar's modules, bundled into one CommonJS script"
  cat >"$work/entry.mjs" <<EOF
import v8 from 'node:v8';
import { sidecar } from '$dist/src/cli/commands/sidecar.js';
import { CommandRegistry } from '$dist/src/cli/framework/registry.js';
import { processContext } from '$dist/src/cli/framework/main.js';
import { buildInfo } from '$dist/src/cli/framework/version.js';
const run = async () => {
  const registry = new CommandRegistry({ name: 'dc-operator', summary: 'snapshot probe', version: buildInfo });
  registry.register(sidecar);
  process.exitCode = await registry.run(process.argv.slice(2), processContext());
};
if (v8.startupSnapshot.isBuildingSnapshot()) v8.startupSnapshot.setDeserializeMainFunction(run);
else void run();
EOF
  # Beside the addons, so that createRequire(import.meta.url)('./aead.node') finds them.
  bundle="$dist/src/tls/native/snapshot-probe.cjs"
  "$1" "$work/entry.mjs" --bundle --platform=node --format=cjs --outfile="$bundle" --log-level=error \
    --define:import.meta.url=__META_URL --banner:js="const __META_URL = require('node:url').pathToFileURL(__filename).href;"
  echo "bundle: $(wc -c <"$bundle") bytes; runs as a plain script: $(node "$bundle" sidecar --help | head -1)"
  for native in on off; do
    out=$( ( [ $native = off ] && export DC_TLS_NATIVE=off; node --snapshot-blob "$work/s.blob" --build-snapshot "$bundle" ) 2>&1); rc=$?
    echo "native addons $native: build exit $rc; not-yet-verified built-ins: $(printf '%s\n' "$out" | grep -o 'built-in module "[^"]*"' | sort -u | tr '\n' ' ')"
    printf '%s\n' "$out" | grep -E 'global handle not serialized|Unknown external reference' | sed -E 's/0x[0-9a-f]+//g' | sort | uniq -c
  done
  rm -f "$bundle"
fi

echo "## 3. tier-up state across a snapshot"
cat >"$work/t.cjs" <<'EOF'
function hot(a, b) { let x = 0; for (let i = 0; i < 4; i++) x += (a * i) ^ b; return x; }
function run(n) { let t = 0; for (let i = 0; i < n; i++) t += hot(i, 7); return t; }
const v8 = require('v8');
if (process.env.WARM) run(Number(process.env.WARM));
v8.startupSnapshot.setDeserializeMainFunction(() => { for (let k = 0; k < 200; k++) { run(10); console.log('calls', (k + 1) * 10); } });
EOF
node --snapshot-blob "$work/cold.blob" --build-snapshot "$work/t.cjs"
WARM=200000 node --snapshot-blob "$work/warm.blob" --build-snapshot "$work/t.cjs"
# Five restored processes of each; the "calls" line printed last before Maglev's compile of hot() began.
for b in cold:0 warm:200000; do
  at=$(for i in 1 2 3 4 5; do node --trace-opt --snapshot-blob "$work/${b%:*}.blob" 2>&1 | grep -E 'compiling method .*JSFunction hot .*MAGLEV|^calls' | grep -m1 -B1 'compiling method' | head -1 | tr -dc 0-9; echo -n ' '; done)
  echo "${b%:*} snapshot (hot() called ${b#*:} times while it was built): Maglev began compiling hot() after the restored process had called it (10 at a time) ${at}times"
done
