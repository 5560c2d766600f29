// Which sidecar shape the cluster supports. Native sidecars (an init container with
// `restartPolicy: Always`) are on by default from Kubernetes 1.29 (beta, SidecarContainers gate);
// before that the sidecar has to be an ordinary container. The version is read once at startup:
// a cluster upgrade restarts nothing here, but the webhook's pods are replaced on upgrade anyway,
// and a stale answer only means the older (still working) shape.

export type SidecarMode = 'native' | 'container';

export interface ServerVersion {
  major: number;
  minor: number;
  gitVersion: string;
}

/** Parses /version's major/minor, which some distributions decorate ("29+", "1.29-gke"). */
export function parseServerVersion(info: { major: string; minor: string; gitVersion: string }): ServerVersion {
  const major = Number.parseInt(info.major, 10);
  const minor = Number.parseInt(info.minor, 10);
  if (Number.isFinite(major) && Number.isFinite(minor)) return { major, minor, gitVersion: info.gitVersion };
  const m = /^v?(\d+)\.(\d+)/.exec(info.gitVersion);
  if (!m) throw new Error(`cannot read a Kubernetes version from major=${info.major} minor=${info.minor} gitVersion=${info.gitVersion}`);
  return { major: Number(m[1]), minor: Number(m[2]), gitVersion: info.gitVersion };
}

export const NATIVE_SIDECAR_MIN = { major: 1, minor: 29 } as const;

export function sidecarModeFor(version: Pick<ServerVersion, 'major' | 'minor'>): SidecarMode {
  const { major, minor } = version;
  const native = major > NATIVE_SIDECAR_MIN.major || (major === NATIVE_SIDECAR_MIN.major && minor >= NATIVE_SIDECAR_MIN.minor);
  return native ? 'native' : 'container';
}
