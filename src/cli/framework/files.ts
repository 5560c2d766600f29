/** Reading inputs and writing outputs for commands, with errors a user can act on. */
import { chmod, link, lstat, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
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
 * Writes all files into `dir` (created if missing) as one unit: all or nothing. Refuses to
 * overwrite unless `force`, checking every target before writing any. Every file is first written
 * to a temporary name beside its target, with its mode from creation (keys are never readable by
 * others, not even briefly); only when all are written are they renamed into place. Targets that
 * exist are kept as hard links until every rename is done, so a failure part-way (a rename refused,
 * a target that is a directory) puts back the previous files: a certificate never ends up next to
 * the key of another one. Returns the target paths, in the order of `files`.
 */
export async function writeOutputFiles(dir: string, files: readonly OutputFile[], opts: { force: boolean; flag: string }): Promise<string[]> {
  let created: string | undefined;
  try {
    created = await mkdir(dir, { recursive: true, mode: 0o755 });
  } catch (e) {
    throw new CommandFailed(`${opts.flag}: cannot create directory ${dir}: ${reason(e)}`);
  }
  const targets = files.map((f) => join(dir, f.name));
  if (!opts.force) {
    for (const t of targets) {
      const exists = await lstat(t).then(
        () => true,
        () => false,
      );
      if (exists) throw new CommandFailed(`${t} already exists (use --force to overwrite)`);
    }
  }
  const suffix = randomBytes(4).toString('hex');
  const sideName = (target: string, kind: string): string => join(dirname(target), `.${basename(target)}.${suffix}.${kind}`);
  const temps = targets.map((t) => sideName(t, 'tmp'));
  /** Hard links to the files a rename replaces, by index; undefined where there was none. */
  const backups: Array<string | undefined> = [];
  let renamed = 0;
  const undo = async (): Promise<void> => {
    for (let i = renamed - 1; i >= 0; i--) {
      const b = backups[i];
      await (b ? rename(b, targets[i]!) : rm(targets[i]!, { force: true })).catch(() => undefined);
    }
    for (const p of [...temps, ...backups]) if (p) await rm(p, { force: true }).catch(() => undefined);
    if (created !== undefined) await rm(created, { recursive: true, force: true }).catch(() => undefined);
  };

  let current = '';
  try {
    for (let i = 0; i < files.length; i++) {
      const f = files[i]!;
      current = targets[i]!;
      await writeFile(temps[i]!, f.content, { mode: f.mode, flag: 'wx' });
      await chmod(temps[i]!, f.mode); // the umask may have narrowed it; never widened past f.mode
    }
    for (let i = 0; i < files.length; i++) {
      current = targets[i]!;
      const existing = await lstat(current).catch(() => undefined);
      if (existing && !existing.isDirectory()) {
        const b = sideName(current, 'old');
        await link(current, b);
        backups[i] = b;
      }
      await rename(temps[i]!, current);
      renamed = i + 1;
    }
  } catch (e) {
    await undo();
    throw new CommandFailed(`cannot write ${current}: ${reason(e)}; no file was changed`);
  }
  for (const b of backups) if (b) await rm(b, { force: true }).catch(() => undefined);
  return targets;
}

export function resolvePath(cwd: string, p: string): string {
  return resolve(cwd, p);
}
