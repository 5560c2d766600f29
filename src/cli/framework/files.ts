/** Reading inputs and writing outputs for commands, with errors a user can act on. */
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { CommandFailed, InputError } from './errors.js';

export interface OutputFile {
  readonly name: string;
  readonly content: string | Uint8Array;
  /** 0o600 for private keys. */
  readonly mode: number;
}

function reason(e: unknown): string {
  const code = (e as { code?: string }).code;
  if (code === 'ENOENT') return 'no such file or directory';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory';
  if (code === 'ENOTDIR') return 'a parent is not a directory';
  return (e as Error).message;
}

/** Reads a text file; the error (an InputError, exit 2) names the flag it came from. */
export async function readTextFile(path: string, flag: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw new InputError(`${flag}: cannot read ${path}: ${reason(e)}`);
  }
}

/**
 * Writes all files into `dir` (created if missing). Refuses to overwrite unless `force`, checking
 * every target before writing any. Each file is written to a temporary name and renamed, so a
 * reader never sees a half-written key, and it has its mode from the start.
 */
export async function writeOutputFiles(dir: string, files: readonly OutputFile[], opts: { force: boolean; flag: string }): Promise<string[]> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o755 });
  } catch (e) {
    throw new CommandFailed(`${opts.flag}: cannot create directory ${dir}: ${reason(e)}`);
  }
  const targets = files.map((f) => join(dir, f.name));
  if (!opts.force) {
    for (const t of targets) {
      const exists = await stat(t).then(
        () => true,
        () => false,
      );
      if (exists) throw new CommandFailed(`${t} already exists (use --force to overwrite)`);
    }
  }
  for (let i = 0; i < files.length; i++) {
    const f = files[i]!;
    const target = targets[i]!;
    const tmp = join(dirname(target), `.${basename(target)}.${randomBytes(4).toString('hex')}.tmp`);
    try {
      await writeFile(tmp, f.content, { mode: f.mode, flag: 'wx' });
      await chmod(tmp, f.mode); // the umask may have narrowed it; never widened past f.mode
      await rename(tmp, target);
    } catch (e) {
      await rm(tmp, { force: true }).catch(() => undefined);
      throw new CommandFailed(`cannot write ${target}: ${reason(e)}`);
    }
  }
  return targets;
}

export function resolvePath(cwd: string, p: string): string {
  return resolve(cwd, p);
}
