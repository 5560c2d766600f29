// Fits the injected sidecar's connection cap to its memory limit. Every open client connection
// holds memory until it closes (OpenSSL's state and buffers with the node engine, our TLS state,
// the upstream socket, JavaScript objects), so under a 128Mi limit the sidecar's own default of
// 10,000 connections is an OOM kill waiting for a client that opens ~1,500 of them and keeps them
// open: every connection of the pod dies with it. With the cap below, connection 1,025 is closed
// at once and the sidecar keeps serving. Measured in bench/results/sidecar-memory.md.

/**
 * What one held-open client connection costs the sidecar's cgroup with the costlier engine (node:tls,
 * the default --certificate-engine: 58-64 KiB measured; our engine 17-25 KiB), rounded up for headroom.
 */
export const SIDECAR_BYTES_PER_CONNECTION = 80 * 1024;
/**
 * What the sidecar needs before any connection is held: ~36 MiB after start-up (Node, V8's heap,
 * the code) plus what bursts of handshakes add (V8's heap growth, glibc's arenas), rounded up.
 */
export const SIDECAR_BASE_BYTES = 48 * 1024 * 1024;
/** The sidecar's own --max-connections default (src/sidecar/config.ts): never raised by us. */
export const SIDECAR_DEFAULT_MAX_CONNECTIONS = 10_000;
/** Below this the limit is too small to serve anything; the sidecar would rather be OOM-killed at once than refuse all. */
const MIN_CONNECTIONS = 16;

const BINARY: Readonly<Record<string, number>> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const DECIMAL: Readonly<Record<string, number>> = { '': 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };

/**
 * A Kubernetes resource quantity (k8s.io/apimachinery resource.Quantity's grammar): an optionally
 * signed number ("1", "1.5", "1.", ".5"; no minus: a negative resource is refused by the apiserver) and a binary or decimal SI suffix or a decimal exponent
 * ("1e9", "1.34217728e+08": what Helm renders for an integer in a values file). The one check of
 * the webhook's resource flags and of the limit the connection cap is sized from.
 */
export const QUANTITY = /^([+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+|m|k|M|G|T|P|E)?$/;

/** A Kubernetes memory quantity ("128Mi", "1G", "134217728", "1e9") in bytes; undefined when not one. */
export function memoryQuantityBytes(quantity: string): number | undefined {
  const m = QUANTITY.exec(quantity.trim());
  if (!m) return undefined;
  const unit = m[2] ?? '';
  const scale = /^[eE][+-]?[0-9]/.test(unit) ? 10 ** Number(unit.slice(1)) : (BINARY[unit] ?? DECIMAL[unit] ?? 1);
  const bytes = Math.floor(Number(m[1]) * scale);
  return Number.isFinite(bytes) && bytes >= 0 ? bytes : undefined;
}

/**
 * The --max-connections that keeps a sidecar under `memoryLimit` (a quantity), or undefined when the
 * sidecar's default already fits (no limit, or one large enough for 10,000 connections) or the
 * quantity cannot be read (the API server validated it; we add nothing rather than guess).
 * --max-connections-per-source is left alone: it is about fairness between clients, not memory
 * (its default, 2500, then exceeds the total, so one source may take every slot, as before it
 * could take 2500 of them), and lowering it would refuse busy ingress pods that did fit before.
 */
export function maxConnectionsForMemoryLimit(memoryLimit: string | undefined): number | undefined {
  if (memoryLimit === undefined) return undefined;
  const bytes = memoryQuantityBytes(memoryLimit);
  if (bytes === undefined) return undefined;
  const fit = Math.floor((bytes - SIDECAR_BASE_BYTES) / SIDECAR_BYTES_PER_CONNECTION);
  if (fit >= SIDECAR_DEFAULT_MAX_CONNECTIONS) return undefined;
  return Math.max(MIN_CONNECTIONS, fit);
}
