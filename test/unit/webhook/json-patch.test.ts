import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { applyPatch, diff, escapePointerToken, JsonPatchError, type JsonValue } from '../../../src/webhook/json-patch.js';

void test('equal documents give an empty patch', () => {
  assert.deepEqual(diff({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] }), []);
});

void test('a new object key is one add, a removed key one remove, a changed scalar one replace', () => {
  assert.deepEqual(diff({ a: 1, b: 2 }, { a: 3, c: 4 }), [
    { op: 'replace', path: '/a', value: 3 },
    { op: 'remove', path: '/b' },
    { op: 'add', path: '/c', value: 4 },
  ]);
});

void test('annotation keys with "/" and "~" are escaped as JSON Pointer tokens', () => {
  assert.equal(escapePointerToken('dc-operator.io/inject'), 'dc-operator.io~1inject');
  assert.equal(escapePointerToken('a~b'), 'a~0b');
  assert.deepEqual(diff({ metadata: { annotations: {} } }, { metadata: { annotations: { 'x.io/y~z': 'true' } } }), [
    { op: 'add', path: '/metadata/annotations/x.io~1y~0z', value: 'true' },
  ]);
});

void test('appending to an array is a single add at the end index', () => {
  assert.deepEqual(diff({ c: [{ n: 'app' }] }, { c: [{ n: 'app' }, { n: 'sidecar' }] }), [
    { op: 'add', path: '/c/1', value: { n: 'sidecar' } },
  ]);
});

void test('inserting at the front of an array is a single add at index 0, not a cascade of replaces', () => {
  assert.deepEqual(diff([2, 3, 4], [1, 2, 3, 4]), [{ op: 'add', path: '/0', value: 1 }]);
});

void test('a missing array becomes one add of the whole array', () => {
  assert.deepEqual(diff({ spec: {} }, { spec: { initContainers: [{ name: 's' }] } }), [
    { op: 'add', path: '/spec/initContainers', value: [{ name: 's' }] },
  ]);
});

void test('a change of type is a replace', () => {
  assert.deepEqual(diff({ a: [1] }, { a: { 0: 1 } }), [{ op: 'replace', path: '/a', value: { 0: 1 } }]);
});

void test('applyPatch rejects a path that does not exist', () => {
  assert.throws(() => applyPatch({ a: 1 }, [{ op: 'replace', path: '/b/c', value: 1 }]), JsonPatchError);
  assert.throws(() => applyPatch({ a: [] }, [{ op: 'remove', path: '/a/0' }]), JsonPatchError);
});

const jsonValue: fc.Arbitrary<JsonValue> = fc.jsonValue({ maxDepth: 4 }) as fc.Arbitrary<JsonValue>;

void test('for any two JSON documents, applying diff(a, b) to a gives b', () => {
  fc.assert(
    fc.property(jsonValue, jsonValue, (a, b) => {
      // JSON round trip normalises -0 to 0, which JSON itself cannot tell apart.
      const na = JSON.parse(JSON.stringify(a)) as JsonValue;
      const nb = JSON.parse(JSON.stringify(b)) as JsonValue;
      assert.deepEqual(applyPatch(na, diff(na, nb)), nb);
    }),
    { numRuns: 500 },
  );
});

void test('for an array and a mutated copy of it, applying the diff gives the copy', () => {
  const small = fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 8 });
  fc.assert(
    fc.property(small, fc.integer({ min: 0, max: 8 }), fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }), fc.nat(3), (a, at, insert, drop) => {
      const b = [...a];
      b.splice(Math.min(at, b.length), drop, ...insert);
      assert.deepEqual(applyPatch(a, diff(a, b)), b);
    }),
    { numRuns: 500 },
  );
});

void test('a "__proto__" key is patched as an ordinary property', () => {
  const from = JSON.parse('{}') as JsonValue;
  const to = JSON.parse('{"__proto__": {"x": 1}}') as JsonValue;
  const result = applyPatch(from, diff(from, to));
  assert.deepEqual(Object.keys(result as object), ['__proto__']);
  assert.equal(Object.getPrototypeOf(result), Object.prototype);
});
