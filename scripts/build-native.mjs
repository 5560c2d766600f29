#!/usr/bin/env node
// Builds the optional native addons of src/tls: the AEAD of the record path
// (src/tls/native/aead.c) and the handshake's key exchange and key schedule
// (src/tls/native/handshake.c), into dist/src/tls/native/<name>.node, next to the compiled
// <name>.js that loads each; and the controller's malloc_trim (src/operator/native/malloc-trim.c).
//
//   node scripts/build-native.mjs [--require]
//
// With the C compiler (`cc`, else `gcc`; scripts/system-deps.sh installs gcc) and the headers of
// the Node that runs this script (<prefix>/include/node: node_api.h and OpenSSL's, shipped by
// the official tarballs and by the npm package node-linux-<arch> that scripts/node/ensure.sh
// unpacks). Nothing is downloaded. The result is cached by the hash of the source, the Node
// version and the compiler under ${XDG_CACHE_HOME:-~/.cache}/dc-operator/native/, so a rebuild
// costs a copy.
//
// When the compiler or the headers are missing, it says so in one line and exits 0: src/tls then
// runs on node:crypto (the fallback, always tested). --require makes that an error (the image
// build and CI use it, so a missing addon is not silent there).
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// Paths under src/ (source .c) and dist/src/ (the .node next to the .js that loads it).
const ADDONS = ['tls/native/aead', 'tls/native/handshake', 'operator/native/malloc-trim'];
const required = process.argv.includes('--require');

function skip(why) {
  const msg = `native addons: not built (${why}); src/tls uses node:crypto`;
  if (required) {
    console.error(`${msg}\nnative addons: error: --require was given`);
    process.exit(1);
  }
  console.error(msg);
  process.exit(0);
}

function findCompiler() {
  for (const cc of [process.env.CC, 'cc', 'gcc'].filter(Boolean)) {
    try {
      const version = execFileSync(cc, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0];
      return { cc, version };
    } catch {
      // not this one
    }
  }
  return undefined;
}

const include = join(dirname(process.execPath), '..', 'include', 'node');
if (!existsSync(join(include, 'node_api.h')) || !existsSync(join(include, 'openssl', 'evp.h'))) {
  skip(`no node_api.h and openssl/evp.h under ${include}`);
}
const compiler = findCompiler();
if (!compiler) skip('no C compiler: install gcc (scripts/system-deps.sh does)');

const baseFlags = ['-O2', '-fPIC', '-shared', '-std=c11', '-Wall', '-Wextra', '-Werror', '-fvisibility=hidden'];
for (const path of ADDONS) {
  const name = path.slice(path.lastIndexOf('/') + 1);
  const source = join(root, `src/${path}.c`);
  const target = join(root, `dist/src/${path}.node`);
  const flags = [...baseFlags, `-DNODE_GYP_MODULE_NAME=${name}`];
  const hash = createHash('sha256')
    .update(readFileSync(source))
    .update(`\0${process.version}\0${process.arch}\0${compiler.version}\0${flags.join(' ')}`)
    .digest('hex')
    .slice(0, 16);
  const cacheDir = join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'dc-operator', 'native', hash);
  const cached = join(cacheDir, `${name}.node`);
  if (!existsSync(cached)) {
    mkdirSync(cacheDir, { recursive: true });
    const tmp = `${cached}.${process.pid}.tmp`;
    try {
      // Unresolved symbols (napi_*, EVP_*) are left to the dynamic loader: the node binary that
      // loads the addon exports both.
      execFileSync(compiler.cc, [...flags, '-I', include, '-o', tmp, source], { stdio: 'inherit' });
      renameSync(tmp, cached);
    } catch (e) {
      rmSync(tmp, { force: true });
      if (required) throw e;
      skip(`${compiler.cc} failed on ${name}.c: ${e.message.split('\n')[0]}`);
    }
  }
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(cached, target);
  console.error(`native ${name}: ${target} (${compiler.cc}, Node ${process.version}, cache ${hash})`);
}
