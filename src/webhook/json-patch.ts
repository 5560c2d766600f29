// A small RFC 6902 JSON Patch generator (diff) and applier for plain JSON values.
//
// The admission handler never writes patch operations by hand: it mutates a deep copy of the pod
// and asks `diff(original, mutated)` for the operations. That keeps the
// mutation code ordinary object manipulation and makes "the patch turns the original into the
// mutated pod" a property we can test on random inputs with `applyPatch`.
//
// Arrays are compared by common prefix and common suffix, so inserting one element anywhere
// (a sidecar container prepended to initContainers, a volume appended) is one `add`, not a
// cascade of `replace` operations.

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
type JsonObject = { [key: string]: JsonValue };

export type PatchOperation =
  | { op: 'add'; path: string; value: JsonValue }
  | { op: 'remove'; path: string }
  | { op: 'replace'; path: string; value: JsonValue };

export class JsonPatchError extends Error {
  override name = 'JsonPatchError';
}

/** Escapes one reference token of a JSON Pointer (RFC 6901 §4: `~` → `~0`, `/` → `~1`). */
export function escapePointerToken(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

function unescapePointerToken(token: string): string {
  return token.replace(/~1/g, '/').replace(/~0/g, '~');
}

function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Structural equality of two JSON values (key order of objects does not matter). */
export function jsonEqual(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    return a.every((v, i) => jsonEqual(v, b[i]));
  }
  if (isObject(a)) {
    if (!isObject(b)) return false;
    const ka = Object.keys(a);
    if (ka.length !== Object.keys(b).length) return false;
    return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && jsonEqual(a[k], b[k]));
  }
  return false;
}

/** The operations that turn `from` into `to`, in order. Empty when they are equal. */
export function diff(from: JsonValue, to: JsonValue): PatchOperation[] {
  const ops: PatchOperation[] = [];
  diffAt('', from, to, ops);
  return ops;
}

function diffAt(path: string, from: JsonValue, to: JsonValue, ops: PatchOperation[]): void {
  if (jsonEqual(from, to)) return;
  if (isObject(from) && isObject(to)) {
    diffObjects(path, from, to, ops);
  } else if (Array.isArray(from) && Array.isArray(to)) {
    diffArrays(path, from, to, ops);
  } else {
    ops.push({ op: 'replace', path, value: to });
  }
}

function diffObjects(path: string, from: JsonObject, to: JsonObject, ops: PatchOperation[]): void {
  for (const key of Object.keys(from)) {
    const child = `${path}/${escapePointerToken(key)}`;
    const toValue = to[key];
    if (!Object.prototype.hasOwnProperty.call(to, key) || toValue === undefined) {
      ops.push({ op: 'remove', path: child });
    } else {
      diffAt(child, from[key] as JsonValue, toValue, ops);
    }
  }
  for (const key of Object.keys(to)) {
    const value = to[key];
    if (!Object.prototype.hasOwnProperty.call(from, key) && value !== undefined) {
      ops.push({ op: 'add', path: `${path}/${escapePointerToken(key)}`, value });
    }
  }
}

function diffArrays(path: string, from: JsonValue[], to: JsonValue[], ops: PatchOperation[]): void {
  let prefix = 0;
  while (prefix < from.length && prefix < to.length && jsonEqual(from[prefix], to[prefix])) prefix++;
  let suffix = 0;
  while (
    suffix < from.length - prefix &&
    suffix < to.length - prefix &&
    jsonEqual(from[from.length - 1 - suffix], to[to.length - 1 - suffix])
  ) {
    suffix++;
  }
  const fromMiddle = from.length - prefix - suffix;
  const toMiddle = to.length - prefix - suffix;
  const paired = Math.min(fromMiddle, toMiddle);
  for (let i = 0; i < paired; i++) {
    diffAt(`${path}/${prefix + i}`, from[prefix + i] as JsonValue, to[prefix + i] as JsonValue, ops);
  }
  // Surplus elements of `from` are removed at one index (each removal shifts the rest left);
  // missing ones are added in order before the common suffix.
  for (let i = paired; i < fromMiddle; i++) ops.push({ op: 'remove', path: `${path}/${prefix + paired}` });
  for (let i = paired; i < toMiddle; i++) {
    ops.push({ op: 'add', path: `${path}/${prefix + i}`, value: to[prefix + i] as JsonValue });
  }
}

/**
 * Applies `add`, `remove` and `replace` operations to a deep copy of `doc` and returns it.
 * Used by the tests to check a generated patch, and in the admission path to sanity-check that
 * the patch reproduces the mutated pod before it is sent to the API server.
 */
export function applyPatch(doc: JsonValue, ops: readonly PatchOperation[]): JsonValue {
  let root = structuredClone(doc);
  for (const op of ops) {
    if (op.path === '') {
      if (op.op === 'remove') throw new JsonPatchError('cannot remove the document root');
      root = structuredClone(op.value);
      continue;
    }
    const tokens = op.path.split('/').slice(1).map(unescapePointerToken);
    const last = tokens.pop() as string;
    let parent: JsonValue = root;
    for (const token of tokens) {
      const next: JsonValue | undefined = Array.isArray(parent)
        ? parent[arrayIndex(token, parent.length - 1, op.path)]
        : isObject(parent)
          ? parent[token]
          : undefined;
      if (next === undefined) throw new JsonPatchError(`path ${op.path} does not exist`);
      parent = next;
    }
    applyAt(parent, last, op);
  }
  return root;
}

function applyAt(parent: JsonValue, key: string, op: PatchOperation): void {
  if (Array.isArray(parent)) {
    if (op.op === 'add') {
      const index = key === '-' ? parent.length : arrayIndex(key, parent.length, op.path);
      parent.splice(index, 0, structuredClone(op.value));
    } else if (op.op === 'remove') {
      parent.splice(arrayIndex(key, parent.length - 1, op.path), 1);
    } else {
      parent[arrayIndex(key, parent.length - 1, op.path)] = structuredClone(op.value);
    }
    return;
  }
  if (!isObject(parent)) throw new JsonPatchError(`path ${op.path}: parent is not a container`);
  if (op.op !== 'add' && !Object.prototype.hasOwnProperty.call(parent, key)) {
    throw new JsonPatchError(`path ${op.path} does not exist`);
  }
  if (op.op === 'remove') delete parent[key];
  // defineProperty, not assignment: a "__proto__" key in JSON is an ordinary own property.
  else Object.defineProperty(parent, key, { value: structuredClone(op.value), enumerable: true, writable: true, configurable: true });
}

function arrayIndex(token: string, max: number, path: string): number {
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw new JsonPatchError(`path ${path}: bad array index ${token}`);
  const index = Number(token);
  if (index > max) throw new JsonPatchError(`path ${path}: index ${index} out of bounds`);
  return index;
}
