/**
 * Writes a directory the way kubelet's atomic writer populates a Secret volume
 * (pkg/volume/util/atomic_writer.go):
 *
 *   ..2026_11_28_13_20_00.000000001/   the payload of one version
 *   ..data -> ..2026_11_28_...        swapped atomically: symlink ..data_tmp, rename over ..data
 *   tls.crt -> ..data/tls.crt          one stable symlink per key, created once
 *
 * After the swap the previous version's directory is removed, and symlinks of keys that
 * disappeared are deleted. Tests use it to exercise the sidecar's watcher exactly as a pod sees
 * a Secret update.
 */
import { mkdir, readlink, rename, rm, symlink, writeFile, lstat } from 'node:fs/promises';
import { join } from 'node:path';

export type VolumeFiles = Readonly<Record<string, string | Uint8Array>>;

let sequence = 0;

function timestampDirName(): string {
  const d = new Date();
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  sequence += 1;
  return `..${d.getUTCFullYear()}_${p(d.getUTCMonth() + 1)}_${p(d.getUTCDate())}_${p(d.getUTCHours())}_${p(d.getUTCMinutes())}_${p(d.getUTCSeconds())}.${p(sequence, 9)}`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

export class KubeletVolume {
  private keys = new Set<string>();

  constructor(readonly dir: string) {}

  /** Publishes a new version of the volume: all files appear to change at once. */
  async write(files: VolumeFiles): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const versionDir = timestampDirName();
    await mkdir(join(this.dir, versionDir));
    for (const [name, content] of Object.entries(files)) {
      await writeFile(join(this.dir, versionDir, name), content, { mode: 0o444 });
    }
    const dataLink = join(this.dir, '..data');
    const previous = (await exists(dataLink)) ? await readlink(dataLink) : undefined;
    const tmpLink = join(this.dir, '..data_tmp');
    await rm(tmpLink, { force: true });
    await symlink(versionDir, tmpLink);
    await rename(tmpLink, dataLink);
    for (const name of Object.keys(files)) {
      if (!(await exists(join(this.dir, name)))) await symlink(join('..data', name), join(this.dir, name));
    }
    for (const name of this.keys) {
      if (!(name in files)) await rm(join(this.dir, name), { force: true });
    }
    this.keys = new Set(Object.keys(files));
    if (previous !== undefined) await rm(join(this.dir, previous), { recursive: true, force: true });
  }
}
