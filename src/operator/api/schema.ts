// A tiny typed builder for structural OpenAPI v3 schemas. Each builder call returns the JSON
// schema *and* carries the TypeScript type it describes, so the CRD YAML (generated from these
// values by generate-crds.ts) and the types the reconciler reads can never drift apart.
//
// Presence of an object field is part of its schema:
//   required  — listed in `required`, present in both the input and the read type;
//   optional  — may be absent everywhere;
//   defaulted — optional for the user (InferInput), but always present when read back from the
//               apiserver, which applies structural defaults on every read (Infer).

export interface CelRule {
  rule: string;
  message: string;
  /** JSON path (relative to the schema node) the error is reported on. */
  fieldPath?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
}

/** The subset of apiextensions.k8s.io/v1 JSONSchemaProps that we emit. */
export interface JsonSchemaProps {
  description?: string;
  type?: 'object' | 'array' | 'string' | 'integer' | 'boolean';
  format?: string;
  enum?: readonly string[];
  default?: unknown;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  items?: JsonSchemaProps;
  properties?: Record<string, JsonSchemaProps>;
  additionalProperties?: JsonSchemaProps;
  required?: string[];
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-validations'?: CelRule[];
}

export type Presence = 'required' | 'optional' | 'defaulted';

export interface Schema<T, P extends Presence = 'required'> {
  readonly json: JsonSchemaProps;
  readonly presence: P;
  /** Phantom: only carries the type. */
  readonly __type?: T;
}

type AnySchema = Schema<unknown, Presence>;
type TypeOf<S> = S extends Schema<infer T, Presence> ? T : never;
type InputOf<S> = S extends Schema<infer T, Presence> ? (T extends object ? InputShape<T> : T) : never;
// Input types of nested objects are computed by the object builder and carried in a brand.
type InputShape<T> = T extends { readonly __input?: infer I } ? I : T;

type Simplify<T> = { [K in keyof T]: T[K] } & {};
type KeysWith<F, P extends Presence> = { [K in keyof F]: F[K] extends Schema<unknown, P> ? K : never }[keyof F];

type ReadShape<F extends Record<string, AnySchema>> = Simplify<
  { [K in KeysWith<F, 'required' | 'defaulted'>]: TypeOf<F[K]> } & { [K in KeysWith<F, 'optional'>]?: TypeOf<F[K]> }
>;
type WriteShape<F extends Record<string, AnySchema>> = Simplify<
  { [K in KeysWith<F, 'required'>]: InputOf<F[K]> } & { [K in KeysWith<F, 'optional' | 'defaulted'>]?: InputOf<F[K]> }
>;

/** The type the reconciler reads (after apiserver defaulting). */
export type Infer<S> = S extends Schema<infer T, Presence> ? StripBrand<T> : never;
/** The type a user writes (defaulted fields may be omitted). */
export type InferInput<S> = InputOf<S>;

type StripBrand<T> = T extends readonly (infer E)[]
  ? StripBrand<E>[]
  : T extends object
    ? { [K in keyof T as K extends '__input' ? never : K]: StripBrand<T[K]> }
    : T;

interface Common {
  description?: string;
  validations?: CelRule[];
}

function withCommon(json: JsonSchemaProps, opts: Common | undefined): JsonSchemaProps {
  const out: JsonSchemaProps = {};
  if (opts?.description !== undefined) out.description = opts.description;
  Object.assign(out, json);
  if (opts?.validations !== undefined && opts.validations.length > 0) out['x-kubernetes-validations'] = opts.validations;
  return out;
}

function make<T>(json: JsonSchemaProps): Schema<T> {
  return { json, presence: 'required' };
}

export function string(
  opts?: Common & { pattern?: string; minLength?: number; maxLength?: number; format?: string },
): Schema<string> {
  const json: JsonSchemaProps = { type: 'string' };
  if (opts?.format !== undefined) json.format = opts.format;
  if (opts?.pattern !== undefined) json.pattern = opts.pattern;
  if (opts?.minLength !== undefined) json.minLength = opts.minLength;
  if (opts?.maxLength !== undefined) json.maxLength = opts.maxLength;
  return make(withCommon(json, opts));
}

export function enumOf<const V extends readonly string[]>(values: V, opts?: Common): Schema<V[number]> {
  return make(withCommon({ type: 'string', enum: [...values] }, opts));
}

export function integer(opts?: Common & { minimum?: number; maximum?: number; format?: 'int32' | 'int64' }): Schema<number> {
  const json: JsonSchemaProps = { type: 'integer' };
  if (opts?.format !== undefined) json.format = opts.format;
  if (opts?.minimum !== undefined) json.minimum = opts.minimum;
  if (opts?.maximum !== undefined) json.maximum = opts.maximum;
  return make(withCommon(json, opts));
}

export function array<T>(
  item: Schema<T, Presence>,
  opts?: Common & { listType?: 'atomic' | 'set' | 'map'; listMapKeys?: string[]; minItems?: number; maxItems?: number },
): Schema<T[]> {
  const json: JsonSchemaProps = { type: 'array' };
  if (opts?.minItems !== undefined) json.minItems = opts.minItems;
  if (opts?.maxItems !== undefined) json.maxItems = opts.maxItems;
  json.items = item.json;
  if (opts?.listType !== undefined) json['x-kubernetes-list-type'] = opts.listType;
  if (opts?.listMapKeys !== undefined) json['x-kubernetes-list-map-keys'] = opts.listMapKeys;
  return make(withCommon(json, opts));
}

export function object<F extends Record<string, AnySchema>>(
  fields: F,
  opts?: Common,
): Schema<ReadShape<F> & { readonly __input?: WriteShape<F> }> {
  const properties: Record<string, JsonSchemaProps> = {};
  const required: string[] = [];
  for (const [name, field] of Object.entries(fields)) {
    properties[name] = field.json;
    if (field.presence === 'required') required.push(name);
  }
  const json: JsonSchemaProps = { type: 'object', properties };
  if (required.length > 0) json.required = required;
  return make(withCommon(json, opts));
}

/** An object with arbitrary keys and values of one schema (e.g. matchLabels: string → string). */
export function record<T>(value: Schema<T, Presence>, opts?: Common): Schema<Record<string, T>> {
  return make(withCommon({ type: 'object', additionalProperties: value.json }, opts));
}

export function optional<T>(schema: Schema<T, Presence>): Schema<T, 'optional'> {
  return { json: schema.json, presence: 'optional' };
}

/** A field the apiserver fills in with `value` when the user leaves it out. */
export function defaulted<T>(schema: Schema<T, Presence>, value: StripBrand<T>): Schema<T, 'defaulted'> {
  const json: JsonSchemaProps = {};
  if (schema.json.description !== undefined) json.description = schema.json.description;
  Object.assign(json, schema.json, { default: value });
  return { json, presence: 'defaulted' };
}
