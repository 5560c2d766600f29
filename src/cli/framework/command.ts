/**
 * A subcommand: its flags, how they become a validated config, and what it does with it.
 *
 *   export const caCreate = defineCommand({
 *     path: ['ca', 'create'], summary: '...', options: { out: { type: 'string', value: 'DIR', ... } },
 *     validate(values) { ... return config },   // throw UsageError naming the flag
 *     async run(config, ctx) { ...; return 0 },
 *   });
 *
 * Flags are parsed with node:util parseArgs (strict), `-h/--help` is added to every command,
 * required flags are checked, then `validate` turns raw strings into a typed config before
 * anything is touched. Register the command in the program's entry file (dcctl.ts, dc-operator.ts).
 */
import { parseArgs } from 'node:util';
import { UsageError } from './errors.js';

export interface StringOption {
  readonly type: 'string';
  readonly multiple?: false;
  /** Placeholder shown in help, e.g. 'DIR'. */
  readonly value: string;
  readonly description: string;
  readonly required?: boolean;
  /** Shown in help and filled in when the flag is absent. */
  readonly default?: string;
  readonly short?: string;
  /** Old spellings, accepted for one release with a warning (see CONTRIBUTING.md, "Flag names"). */
  readonly deprecatedAliases?: readonly string[];
}
export interface StringListOption {
  readonly type: 'string';
  readonly multiple: true;
  readonly value: string;
  readonly description: string;
  readonly required?: boolean;
  readonly short?: string;
  readonly deprecatedAliases?: readonly string[];
}
export interface BooleanOption {
  readonly type: 'boolean';
  readonly description: string;
  readonly short?: string;
  readonly deprecatedAliases?: readonly string[];
}
export type OptionSpec = StringOption | StringListOption | BooleanOption;
export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

/** The raw values a command's validate() receives. */
export type OptionValues<O extends OptionSpecs> = {
  readonly [K in keyof O]: O[K] extends BooleanOption
    ? boolean
    : O[K] extends StringListOption
      ? readonly string[]
      : O[K] extends { required: true } | { default: string }
        ? string
        : string | undefined;
};

export interface PositionalSpec {
  readonly name: string;
  readonly description: string;
  readonly required?: boolean;
}

/** What a command may use of the outside world; tests pass their own. */
export interface CommandContext {
  /** Full name of the command for messages, e.g. 'dcctl cert create'. */
  readonly commandName: string;
  stdout(text: string): void;
  stderr(text: string): void;
  readonly cwd: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  now(): Date;
}

export interface CommandSpec<O extends OptionSpecs, C> {
  /** Words that select the command, e.g. ['cert', 'create']. */
  readonly path: readonly string[];
  /** One line for the command list. */
  readonly summary: string;
  /** Paragraphs for `--help`. */
  readonly description?: string;
  readonly options: O;
  readonly positionals?: readonly PositionalSpec[];
  readonly examples?: readonly string[];
  /**
   * What each exit code means for this command, shown under "Exit status:" in --help. Entries
   * replace the defaults (DEFAULT_EXIT_STATUS) of the same code; every code a command can return
   * is listed, and a test runs each one.
   */
  readonly exitStatus?: Readonly<Record<number, string>>;
  /** Turns raw flags into a config; throws UsageError naming the flag. Touches nothing. */
  validate(values: OptionValues<O>, positionals: readonly string[]): C;
  run(config: C, ctx: CommandContext): Promise<number>;
}

/** A command with its types erased, as the registry holds it. */
export interface Command {
  readonly path: readonly string[];
  readonly summary: string;
  /** Each deprecated spelling with the flag that replaces it, e.g. ['host', 'address']. */
  readonly deprecatedAliases: ReadonlyArray<readonly [alias: string, flag: string]>;
  help(program: string): string;
  execute(argv: readonly string[], ctx: CommandContext): Promise<number>;
}

/** The exit codes of every command (see errors.ts): what a command's exitStatus may refine. */
export const DEFAULT_EXIT_STATUS: Readonly<Record<number, string>> = {
  0: 'success',
  1: 'the command could not be carried out (e.g. an output file exists, a write failed)',
  2: 'usage or input error: a flag, an argument or an input file is wrong',
};

export function defineCommand<const O extends OptionSpecs, C>(spec: CommandSpec<O, C>): Command {
  return {
    path: spec.path,
    summary: spec.summary,
    deprecatedAliases: Object.entries(spec.options).flatMap(([flag, o]) => (o.deprecatedAliases ?? []).map((alias) => [alias, flag] as const)),
    help: (program) => formatHelp(program, spec),
    async execute(argv, ctx) {
      const parsed = parseFlags(spec, argv, (line) => ctx.stderr(`${ctx.commandName}: ${line}\n`));
      if (parsed.help) {
        ctx.stdout(formatHelp(ctx.commandName.split(' ')[0] ?? '', spec));
        return 0;
      }
      const config = spec.validate(parsed.values as OptionValues<O>, parsed.positionals);
      return spec.run(config, ctx);
    },
  };
}

export type RawValues = Record<string, string | boolean | string[] | undefined>;

function parseFlags(
  spec: CommandSpec<OptionSpecs, unknown>,
  argv: readonly string[],
  warn: (line: string) => void,
): { help: boolean; values: RawValues; positionals: string[] } {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  };
  for (const [name, o] of Object.entries(spec.options)) {
    const multiple = o.type === 'string' && o.multiple ? { multiple: true } : {};
    options[name] = { type: o.type, ...multiple, ...(o.short ? { short: o.short } : {}) };
    for (const alias of o.deprecatedAliases ?? []) options[alias] = { type: o.type, ...multiple };
  }
  let result: { values: RawValues; positionals: string[] };
  try {
    result = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true }) as { values: RawValues; positionals: string[] };
  } catch (e) {
    throw translateParseError(e);
  }
  const { values, positionals } = result;
  if (values.help === true) return { help: true, values, positionals };
  foldDeprecatedAliases(spec.options, values, warn);

  for (const [name, o] of Object.entries(spec.options)) {
    const v = values[name];
    if (o.type === 'boolean') {
      values[name] = v === true;
    } else if (o.multiple) {
      if (v === undefined) values[name] = [];
      if (o.required && (values[name] as string[]).length === 0) throw new UsageError(`--${name} is required`, `--${name}`);
    } else {
      if (v === undefined && o.default !== undefined) values[name] = o.default;
      if (o.required && values[name] === undefined) throw new UsageError(`--${name} is required`, `--${name}`);
      if (typeof values[name] === 'string' && values[name] === '') throw new UsageError(`--${name} needs a non-empty value`, `--${name}`);
    }
  }
  const specs = spec.positionals ?? [];
  const required = specs.filter((p) => p.required).length;
  if (positionals.length < required) {
    throw new UsageError(`missing ${specs.slice(positionals.length).filter((p) => p.required).map((p) => p.name).join(' ')}`);
  }
  if (positionals.length > specs.length) {
    throw new UsageError(`unexpected argument "${positionals[specs.length]}"`);
  }
  return { help: false, values, positionals };
}

/**
 * Moves each deprecated spelling's value onto its flag, saying once on stderr which name to use.
 * Both spellings with different values is an error naming the one to keep, never a silent pick.
 */
export function foldDeprecatedAliases(specs: OptionSpecs, values: RawValues, warn: (line: string) => void): void {
  for (const [name, o] of Object.entries(specs)) {
    for (const alias of o.deprecatedAliases ?? []) {
      const old = values[alias];
      if (old === undefined) continue;
      delete values[alias];
      warn(deprecationNotice(`--${alias}`, `--${name}`));
      const current = values[name];
      if (current === undefined) {
        values[name] = old;
      } else if (Array.isArray(current) && Array.isArray(old)) {
        values[name] = [...current, ...old];
      } else if (current !== old) {
        throw new UsageError(`--${alias} (deprecated) and --${name} are both given with different values; keep --${name} and drop --${alias}`, `--${name}`);
      }
    }
  }
}

/** The one line every deprecated spelling (flag or environment variable) prints. */
export function deprecationNotice(old: string, replacement: string): string {
  return `warning: ${old} is deprecated and will be removed in the next release; use ${replacement}`;
}

/** node:util parseArgs errors are multi-sentence; say the same in one line naming the flag. */
function translateParseError(e: unknown): UsageError {
  const err = e as { code?: string; message?: string };
  const message = err.message ?? String(e);
  // Node quotes the flag as '--out <value>', '-l, --loud' or '--bogus'; keep the long form.
  const quoted = /'([^']+)'/.exec(message)?.[1] ?? '';
  const forms = quoted.match(/-{1,2}[A-Za-z0-9][\w-]*/g) ?? [quoted];
  const flag = forms.find((f) => f.startsWith('--')) ?? forms[0] ?? quoted;
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return new UsageError(`unknown flag ${flag}`);
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/does not take an argument/.test(message)) return new UsageError(`${flag} takes no value`, flag);
      if (/ambiguous/.test(message)) return new UsageError(`${flag} needs a value (to pass one starting with "-", write ${flag}=VALUE)`, flag);
      return new UsageError(`${flag} needs a value`, flag);
    default:
      return new UsageError(message.split('\n')[0] ?? message);
  }
}

function formatHelp(program: string, spec: CommandSpec<OptionSpecs, unknown>): string {
  const name = [program, ...spec.path].join(' ');
  const synopsis: string[] = [name];
  for (const [flag, o] of Object.entries(spec.options)) {
    if (o.type === 'string' && o.required) synopsis.push(`--${flag} ${o.value}${o.multiple ? ' ...' : ''}`);
  }
  for (const p of spec.positionals ?? []) synopsis.push(p.required ? p.name : `[${p.name}]`);
  synopsis.push('[flags]');

  const rows: Array<[string, string]> = [];
  for (const [flag, o] of Object.entries(spec.options)) {
    const left = `${o.short ? `-${o.short}, ` : ''}--${flag}${o.type === 'string' ? ` ${o.value}` : ''}`;
    const notes: string[] = [];
    if (o.type === 'string' && o.required) notes.push('required');
    if (o.type === 'string' && o.multiple) notes.push('repeatable');
    if (o.type === 'string' && !o.multiple && o.default !== undefined) notes.push(`default: ${o.default}`);
    rows.push([left, o.description + (notes.length ? ` (${notes.join('; ')})` : '')]);
    for (const alias of o.deprecatedAliases ?? []) {
      rows.push([`--${alias}${o.type === 'string' ? ` ${o.value}` : ''}`, `deprecated: use --${flag}`]);
    }
  }
  rows.push(['-h, --help', 'show this help']);
  const width = Math.max(...rows.map(([l]) => l.length)) + 2;

  const out: string[] = [`Usage: ${synopsis.join(' ')}`, '', spec.summary];
  if (spec.description) out.push('', spec.description.trim());
  if (spec.positionals?.length) {
    out.push('', 'Arguments:');
    const pw = Math.max(...spec.positionals.map((p) => p.name.length)) + 2;
    for (const p of spec.positionals) out.push(`  ${p.name.padEnd(pw)}${p.description}`);
  }
  out.push('', 'Flags:');
  for (const [l, r] of rows) out.push(`  ${l.padEnd(width)}${r}`);
  const exit = { ...DEFAULT_EXIT_STATUS, ...spec.exitStatus };
  out.push('', 'Exit status:');
  for (const [code, meaning] of Object.entries(exit)) out.push(`  ${code}  ${meaning}`);
  if (spec.examples?.length) {
    out.push('', 'Examples:');
    for (const e of spec.examples) out.push(`  ${e}`);
  }
  return out.join('\n') + '\n';
}
