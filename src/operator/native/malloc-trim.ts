// Gives glibc's free heap memory back to the kernel after a burst (malloc-trim.c says why). The
// addon is optional: where it is not built (no compiler) or cannot load (not glibc), the
// controller runs as before and `available` says so.
import { createRequire } from 'node:module';

interface NativeTrim {
  trim(): boolean;
}

let native: NativeTrim | undefined;
let why: string | undefined;
try {
  native = createRequire(import.meta.url)('./malloc-trim.node') as NativeTrim;
} catch (err) {
  why = err instanceof Error ? err.message.split('\n')[0] : String(err);
}

/** Whether the addon loaded, and why not. */
export const mallocTrim: { available: boolean; unavailableBecause: string | undefined } = { available: native !== undefined, unavailableBecause: why };

/** Returns free malloc memory to the kernel; true when some was returned, undefined without the addon. */
export function trimMalloc(): boolean | undefined {
  return native?.trim();
}
