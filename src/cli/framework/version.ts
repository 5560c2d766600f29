/**
 * What `--version` prints: the package version, the commit it was built from where known, and the
 * Node.js and OpenSSL it runs on. Nothing here runs git: the image has neither git nor .git.
 *
 * The commit is, in order: $DC_OPERATOR_COMMIT (set it at build time, e.g. a Dockerfile
 * `ARG COMMIT` + `ENV DC_OPERATOR_COMMIT=$COMMIT`), else the HEAD of a git checkout the package
 * sits in (read from .git, as in development), else "unknown".
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface BuildInfo {
  readonly version: string;
  readonly commit: string;
  readonly node: string;
  readonly openssl: string;
}

/** The package root: this file is dist/src/cli/framework/version.js under it. */
const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function packageVersion(root: string): string {
  try {
    const v = (JSON.parse(readText(join(root, 'package.json')) ?? '') as { version?: unknown }).version;
    return typeof v === 'string' && v !== '' ? v : 'unknown';
  } catch {
    return 'unknown';
  }
}

const HASH = /^[0-9a-f]{40}(?:[0-9a-f]{24})?$/;

/** HEAD of the git checkout at `root` (a .git directory, or a .git file of a worktree), read from its files. */
export function gitHead(root: string): string | undefined {
  let gitDir = join(root, '.git');
  try {
    if (statSync(gitDir).isFile()) {
      const target = /^gitdir: (.+)$/m.exec(readText(gitDir) ?? '')?.[1]?.trim();
      if (!target) return undefined;
      gitDir = isAbsolute(target) ? target : resolve(root, target);
    }
  } catch {
    return undefined;
  }
  const head = readText(join(gitDir, 'HEAD'))?.trim();
  if (!head) return undefined;
  if (HASH.test(head)) return head;
  const ref = /^ref: (refs\/[^\s]+)$/.exec(head)?.[1];
  if (!ref) return undefined;
  const common = readText(join(gitDir, 'commondir'))?.trim();
  const commonDir = common ? resolve(gitDir, common) : gitDir;
  for (const dir of [gitDir, commonDir]) {
    const loose = readText(join(dir, ref))?.trim();
    if (loose && HASH.test(loose)) return loose;
  }
  for (const line of (readText(join(commonDir, 'packed-refs')) ?? '').split('\n')) {
    const [hash, name] = line.split(' ');
    if (name === ref && hash && HASH.test(hash)) return hash;
  }
  return undefined;
}

export function buildInfo(env: Readonly<Record<string, string | undefined>> = process.env, root = PACKAGE_ROOT): BuildInfo {
  const fromEnv = env.DC_OPERATOR_COMMIT?.trim();
  return {
    version: packageVersion(root),
    commit: fromEnv || gitHead(root) || 'unknown',
    node: process.version,
    openssl: process.versions.openssl ?? 'unknown',
  };
}

/** The text of `PROGRAM --version`. */
export function formatVersion(program: string, info: BuildInfo): string {
  return `${program} ${info.version}\ncommit:  ${info.commit}\nnode:    ${info.node}\nopenssl: ${info.openssl}\n`;
}
