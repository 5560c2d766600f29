/**
 * The Dockerfile, checked without a Docker engine: what it names must exist in the build output and
 * run. The runtime stage's WORKDIR /app mirrors the repository root (package.json + dist/src), so
 * every /app path it names is checked against this checkout after `tsc`.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { builtinModules } from 'node:module';
import ts from 'typescript';
import { repoRoot } from '../support/control-plane.js';
import { DEFAULT_SIDECAR_CONFIG } from '../../src/webhook/config.js';
import { parseDockerfile, type Stage } from '../support/dockerfile.js';

const dockerfile = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
const stages = parseDockerfile(dockerfile);
const runtime = stages.at(-1) as Stage;
const all = (stage: Stage, op: string): string[] => stage.instructions.filter((i) => i.op === op).map((i) => i.args);
const last = (stage: Stage, op: string): string | undefined => all(stage, op).at(-1);

function entrypoint(): string[] {
  const e = last(runtime, 'ENTRYPOINT');
  assert.ok(e, 'the runtime stage has an ENTRYPOINT');
  const parsed: unknown = JSON.parse(e);
  assert.ok(Array.isArray(parsed) && parsed.every((x) => typeof x === 'string'), 'ENTRYPOINT is in exec form');
  return parsed as string[];
}

/** /app/x or x (relative to WORKDIR /app) → the same file in this checkout. */
function inCheckout(appPath: string): string {
  const rel = appPath.startsWith('/app/') ? appPath.slice('/app/'.length) : appPath;
  return join(repoRoot, rel);
}

function runNode(args: string[], cwd = repoRoot): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, args, { cwd, encoding: 'utf8', timeout: 30_000, env: { ...process.env, NODE_ENV: 'production' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `Commands:` section of a --help text → command names. */
function commandsOf(help: string): string[] {
  const section = help.split(/^Commands:$/m)[1]?.split(/\n\s*\n/)[0] ?? '';
  return section.split('\n').map((l) => /^\s+(\S+)/.exec(l)?.[1]).filter((c): c is string => c !== undefined);
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? tsFiles(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : []);
}

void describe('Dockerfile', () => {
  void it('builds in separate stages and runs a slim Node 24 image as uid 65532', () => {
    assert.ok(stages.length >= 2, 'multi-stage');
    assert.match(runtime.from, /^node:24[-.\w]*-slim$/, `runtime base ${runtime.from}`);
    assert.equal(last(runtime, 'USER'), '65532:65532');
    assert.ok(!all(runtime, 'RUN').some((r) => /npm (ci|install)(?!.*--omit=dev)/.test(r)), 'no dev dependencies installed in the runtime stage');
    assert.equal(last(runtime, 'WORKDIR'), '/app');
  });

  void it('has the entry point node dist/src/cli/dc-operator.js, and it exists after tsc', () => {
    const [exe, script] = entrypoint();
    assert.equal(exe, 'node');
    assert.equal(script, 'dist/src/cli/dc-operator.js');
    assert.ok(existsSync(inCheckout(script)), `${script} is built (run tsc first)`);
  });

  void it('copies from the build stages exactly what the runtime needs, and those paths exist', () => {
    const copies = all(runtime, 'COPY').map((c) => /^--from=(\S+)\s+(\S+)\s+(\S+)$/.exec(c));
    const froms = copies.filter((m): m is RegExpExecArray => m !== null).map((m) => ({ stage: m[1], src: m[2] ?? '', dest: m[3] ?? '' }));
    const stageNames = stages.map((s) => s.name);
    for (const c of froms) assert.ok(stageNames.includes(c.stage), `COPY --from=${c.stage} names a stage`);
    // /src in the build stages is this checkout; dest is relative to /app.
    for (const c of froms) {
      assert.ok(c.src.startsWith('/src/'), `${c.src} is under the build WORKDIR`);
      assert.equal(c.src.slice('/src/'.length), c.dest.replace(/^\.\//, ''), `${c.src} lands at the same relative path`);
      assert.ok(existsSync(join(repoRoot, c.dest)), `${c.dest} exists in the checkout`);
    }
    const dests = froms.map((c) => c.dest.replace(/^\.\//, ''));
    for (const needed of ['package.json', 'node_modules', 'dist/src']) assert.ok(dests.includes(needed), `runtime gets ${needed}`);
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { type?: string };
    assert.equal(pkg.type, 'module', 'package.json makes dist/**/*.js ES modules');
  });

  void it('runs `dc-operator --help` and every subcommand\'s --help with exit code 0', () => {
    const [, script] = entrypoint();
    const top = runNode([script as string, '--help']);
    assert.equal(top.code, 0, top.stderr);
    const commands = commandsOf(top.stdout);
    for (const expected of ['controller', 'webhook', 'sidecar', 'keyserver']) assert.ok(commands.includes(expected), `${expected} in ${commands.join(', ')}`);
    for (const c of commands) {
      const r = runNode([script as string, c, '--help']);
      assert.equal(r.code, 0, `dc-operator ${c} --help: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^Usage: dc-operator ${c}`, 'm'));
    }
  });

  void it('puts dc-operator on PATH (the webhook injects the sidecar as `dc-operator sidecar`) and it runs through the symlink', () => {
    const links = all(runtime, 'RUN').flatMap((r) => [...r.matchAll(/ln -s (\S+) \/usr\/local\/bin\/(\S+)/g)]).map((m) => ({ target: m[1] ?? '', name: m[2] ?? '' }));
    assert.ok(links.some((l) => l.name === DEFAULT_SIDECAR_CONFIG.command[0]), `a link named ${DEFAULT_SIDECAR_CONFIG.command[0]}`);
    const dir = mkdtempSync(join(tmpdir(), 'dc-docker-bin-'));
    try {
      for (const l of links) {
        const file = inCheckout(l.target);
        assert.ok(existsSync(file), `${l.target} exists`);
        assert.ok(readFileSync(file, 'utf8').startsWith('#!/usr/bin/env node\n'), `${l.target} starts with a node shebang`);
        assert.ok(all(runtime, 'RUN').some((r) => r.includes('chmod') && r.includes(relative(repoRoot, file))), `${l.target} is made executable`);
        symlinkSync(file, join(dir, l.name));
        const r = runNode([join(dir, l.name), '--help'], dir);
        assert.equal(r.code, 0, `${l.name} --help via symlink: ${r.stderr}`);
        assert.match(r.stdout, new RegExp(`^Usage: ${l.name} `, 'm'));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  void describe('Node\'s compile cache, filled at build time', () => {
    const env = Object.fromEntries(all(runtime, 'ENV').flatMap((e) => e.split(/\s+/)).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    const cacheDir = env.NODE_COMPILE_CACHE ?? '';
    /** The runtime stage's RUN instructions with the USER in effect for each. */
    const runs: Array<{ user: string; args: string }> = [];
    let user = 'root';
    for (const i of runtime.instructions) {
      if (i.op === 'USER') user = i.args;
      if (i.op === 'RUN') runs.push({ user, args: i.args });
    }
    const fill = runs.find((r) => /node dist\/src\/cli\/dc-operator\.js --help/.test(r.args));
    const lock = runs.find((r) => r.args.includes(`chmod -R a=rX ${cacheDir}`));
    const uid = process.getuid?.() ?? 0;

    /** The fill step's commands, run here as they are written, with the cache in `dir`. */
    function runFill(dir: string): void {
      const r = spawnSync('sh', ['-c', fill!.args], {
        cwd: repoRoot,
        encoding: 'utf8',
        timeout: 60_000,
        env: { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`, NODE_ENV: 'production', NODE_COMPILE_CACHE: dir },
      });
      assert.equal(r.status, 0, `the fill step failed: ${r.stderr}`);
    }

    /** `dc-operator sidecar --help` with the cache in `dir`: Node's own account of each module it looked up. */
    function sidecarHelp(dir: string, readOnly: boolean): { code: number | null; stdout: string; fromCache: number; missed: number; rejected: number } {
      const argv = [process.execPath, 'dist/src/cli/dc-operator.js', 'sidecar', '--help'];
      // Root writes through file modes: a read-only bind mount in a private mount namespace is what
      // a read-only root filesystem is. Other users get a directory without write permission.
      const cmd = readOnly && uid === 0 ? ['unshare', '-m', 'sh', '-c', 'mount --bind -o ro "$0" "$0" && exec "$@"', dir, ...argv] : argv;
      const r = spawnSync(cmd[0]!, cmd.slice(1), { cwd: repoRoot, encoding: 'utf8', timeout: 30_000, maxBuffer: 64 << 20, env: { ...process.env, NODE_COMPILE_CACHE: dir, NODE_DEBUG_NATIVE: 'COMPILE_CACHE' } });
      // One "reading cache from ... for <module>..." line per module looked up, ending in "success" or why not.
      const reads = r.stderr.split('\n').filter((l) => l.includes('] reading cache from '));
      const fromCache = reads.filter((l) => /\.\.\. success/.test(l)).length;
      // Then V8's verdict on what was read: rejected for another V8 version or flag set.
      return { code: r.status, stdout: r.stdout, fromCache, missed: reads.length - fromCache, rejected: r.stderr.match(/ was rejected,/g)?.length ?? 0 };
    }

    const filesOf = (dir: string): string[] => readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort();

    void it('names the cache in ENV and fills it as uid 65532 (Node keys it by uid), then root makes it read-only and readable', () => {
      assert.equal(cacheDir, '/app/.cache/node-compile');
      assert.ok(fill, 'a RUN runs dc-operator --help to fill the cache');
      assert.equal(fill.user, '65532:65532', 'the cache is filled by the uid the processes run as');
      assert.match(fill.args, /node dist\/src\/cli\/dcctl\.js --help/, 'dcctl\'s modules too');
      assert.ok(runs.some((r) => r.user === 'root' && runs.indexOf(r) < runs.indexOf(fill) && r.args.includes(`mkdir -p ${cacheDir}`) && r.args.includes(`chown 65532:65532 ${cacheDir}`)), 'the directory is made for 65532 first');
      assert.ok(lock && lock.user === 'root' && runs.indexOf(lock) > runs.indexOf(fill), 'root locks it after the fill');
      assert.match(lock.args, new RegExp(`chown -R root:root ${cacheDir}`));
      assert.equal(last(runtime, 'USER'), '65532:65532');
    });

    void it('its commands fill a cache here that a read-only start then reads every module from, writing nothing', () => {
      const dir = mkdtempSync(join(tmpdir(), 'dc-compile-cache-'));
      try {
        runFill(dir);
        const tags = readdirSync(dir);
        assert.equal(tags.length, 1, `one subdirectory: ${tags.join(', ')}`);
        assert.match(tags[0]!, new RegExp(`^v${process.versions.node.replace(/\./g, '\\.')}-${process.arch}-[0-9a-f]{8}-${uid}$`), 'named by Node version, arch, V8 flags and uid');
        assert.ok(readdirSync(join(dir, tags[0]!)).length > 100, 'an entry per module');
        const before = filesOf(dir);
        chmodSync(join(dir, tags[0]!), 0o555);
        const r = sidecarHelp(dir, true);
        assert.equal(r.code, 0);
        assert.match(r.stdout, /^Usage: dc-operator sidecar/m);
        assert.ok(r.fromCache > 100, `modules from the cache: ${r.fromCache}`);
        assert.equal(r.missed, 0, 'every module the sidecar loads is in the cache');
        assert.equal(r.rejected, 0, 'and V8 takes every entry');
        assert.deepEqual(filesOf(dir), before, 'nothing written');
      } finally {
        chmodSync(dir, 0o755);
        for (const t of readdirSync(dir)) chmodSync(join(dir, t), 0o755);
        rmSync(dir, { recursive: true, force: true });
      }
    });

    void it('entries written under another V8 flag set (how another V8 version\'s look to V8) are rejected: the same start', () => {
      const dir = mkdtempSync(join(tmpdir(), 'dc-compile-cache-'));
      const other = mkdtempSync(join(tmpdir(), 'dc-compile-cache-other-'));
      try {
        runFill(dir);
        const tag = join(dir, readdirSync(dir)[0]!);
        const r0 = spawnSync(process.execPath, ['--max-lazy', 'dist/src/cli/dc-operator.js', 'sidecar', '--help'], { cwd: repoRoot, encoding: 'utf8', timeout: 30_000, env: { ...process.env, NODE_COMPILE_CACHE: other } });
        assert.equal(r0.status, 0, r0.stderr);
        const otherTag = join(other, readdirSync(other)[0]!);
        assert.notEqual(readdirSync(other)[0], readdirSync(dir)[0], 'another flag set, another subdirectory');
        for (const f of readdirSync(otherTag)) writeFileSync(join(tag, f), readFileSync(join(otherTag, f)));
        chmodSync(tag, 0o555);
        const r = sidecarHelp(dir, true);
        assert.equal(r.code, 0);
        assert.match(r.stdout, /^Usage: dc-operator sidecar/m);
        assert.ok(r.rejected > 100, `rejected by V8: ${r.rejected}`);
      } finally {
        for (const t of readdirSync(dir)) chmodSync(join(dir, t), 0o755);
        rmSync(dir, { recursive: true, force: true });
        rmSync(other, { recursive: true, force: true });
      }
    });

    void it('a corrupted cache, read-only, is ignored: the same start, every entry refused', () => {
      const dir = mkdtempSync(join(tmpdir(), 'dc-compile-cache-'));
      try {
        runFill(dir);
        const tag = join(dir, readdirSync(dir)[0]!);
        for (const f of readdirSync(tag)) {
          const bytes = readFileSync(join(tag, f));
          bytes.fill(0x5a, Math.min(24, bytes.length));
          writeFileSync(join(tag, f), bytes);
        }
        chmodSync(tag, 0o555);
        const r = sidecarHelp(dir, true);
        assert.equal(r.code, 0);
        assert.match(r.stdout, /^Usage: dc-operator sidecar/m);
        assert.equal(r.fromCache, 0);
        assert.ok(r.missed > 100, `refused: ${r.missed}`);
      } finally {
        for (const t of readdirSync(dir)) chmodSync(join(dir, t), 0o755);
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  void it('builds from src/ alone: no source file imports from outside src/', () => {
    const srcDir = join(repoRoot, 'src');
    for (const file of tsFiles(srcDir)) {
      for (const m of readFileSync(file, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
        const target = join(file, '..', m[1] ?? '');
        assert.ok(!relative(srcDir, target).startsWith('..'), `${relative(repoRoot, file)} imports ${m[1]}, outside src/`);
      }
    }
  });

  void it('needs only production dependencies at run time: every package src/ imports is in "dependencies"', () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    const deps = new Set(Object.keys(pkg.dependencies ?? {}));
    const builtins = new Set(builtinModules);
    for (const file of tsFiles(join(repoRoot, 'src'))) {
      for (const { fileName: spec } of ts.preProcessFile(readFileSync(file, 'utf8'), true, true).importedFiles) {
        if (spec.startsWith('.') || spec.startsWith('node:') || builtins.has(spec)) continue;
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] ?? spec);
        assert.ok(deps.has(name), `${relative(repoRoot, file)} imports ${spec}; ${name} must be in dependencies (the image has no devDependencies)`);
      }
    }
  });

  void it('.dockerignore keeps local build output and secrets out, and lets in what the build copies', () => {
    const ignored = readFileSync(join(repoRoot, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    for (const p of ['node_modules', 'dist', '.git', '.dev']) assert.ok(ignored.includes(p), `${p} ignored`);
    const copiedFromContext = stages.flatMap((s) => all(s, 'COPY')).filter((c) => !c.startsWith('--from='))
      .flatMap((c) => c.split(/\s+/).slice(0, -1));
    assert.ok(copiedFromContext.length > 0);
    for (const p of copiedFromContext) {
      assert.ok(!ignored.includes(p), `${p} is copied but ignored`);
      assert.ok(statSync(join(repoRoot, p)), `${p} exists`);
    }
  });
});
