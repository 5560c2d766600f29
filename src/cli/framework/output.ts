/**
 * `-o text|json|yaml` for commands whose result is data (inspect, probe, and the create commands:
 * the paths written). A command adds `output: outputOption` to its options, reads the format
 * with outputFormat() in validate(), and prints its result with printResult(). In json mode
 * the registry reports errors as one JSON object on stderr (errorJson), found from argv
 * (requestedFormat) because a usage error can come before any flag is understood.
 */
import type { CommandContext, StringOption } from './command.js';
import { UsageError } from './errors.js';

export const OUTPUT_FORMATS = ['text', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export const outputOption = {
  type: 'string',
  short: 'o',
  value: 'FORMAT',
  description: 'output format: text, json or yaml (json: errors too, as one JSON object on stderr)',
  default: 'text',
} as const satisfies StringOption;

/** The format of `-o`; `--json` (kept for scripts written before -o) means json. */
export function outputFormat(value: string, json = false): OutputFormat {
  if (!(OUTPUT_FORMATS as readonly string[]).includes(value)) {
    throw new UsageError(`unknown output format "${value}"; allowed: ${OUTPUT_FORMATS.join(', ')}`, '--output');
  }
  if (json && value !== 'text' && value !== 'json') throw new UsageError(`--json contradicts --output ${value}`, '--json');
  return json ? 'json' : (value as OutputFormat);
}

/** The format argv asks for, read without the command's flag parser (which may be what failed). */
export function requestedFormat(argv: readonly string[]): OutputFormat {
  let format: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') break;
    if (a === '--json') format = 'json';
    else if (a === '-o' || a === '--output') format = argv[i + 1];
    else if (a.startsWith('--output=')) format = a.slice('--output='.length);
    else if (/^-o[a-z]+$/.test(a)) format = a.slice(2);
  }
  return format === 'json' || format === 'yaml' ? format : 'text';
}

/** Prints `value` as JSON or YAML, or calls `text` for the human form. */
export function printResult(ctx: Pick<CommandContext, 'stdout'>, format: OutputFormat, value: unknown, text: () => string): void {
  if (format === 'json') ctx.stdout(`${JSON.stringify(value, null, 2)}\n`);
  else if (format === 'yaml') ctx.stdout(toYaml(value));
  else ctx.stdout(text());
}

export interface ErrorReport {
  readonly command: string;
  /** usage and input: exit 2; failed: the command's own code; internal: a bug. */
  readonly kind: 'usage' | 'input' | 'failed' | 'internal';
  readonly message: string;
  readonly exitCode: number;
  readonly flag?: string;
}

/** One line of JSON for stderr. */
export function errorJson(report: ErrorReport): string {
  return `${JSON.stringify({ error: report })}\n`;
}

const YAML_PLAIN = /^[A-Za-z_/.][A-Za-z0-9_./+-]*$/;
const YAML_RESERVED = /^(?:true|false|yes|no|on|off|y|n|null|~|\.inf|\.nan)$/i;

function yamlScalar(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'boolean' || typeof v === 'number') return String(v);
  const s = String(v);
  // A JSON string is a valid YAML double-quoted scalar; plain only where nothing can misread it.
  return YAML_PLAIN.test(s) && !YAML_RESERVED.test(s) ? s : JSON.stringify(s);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Block-style YAML for plain data (objects, arrays, strings, numbers, booleans, null). */
export function toYaml(value: unknown, indent = ''): string {
  if (Array.isArray(value)) {
    if (value.length === 0) return `${indent}[]\n`;
    return value
      .map((item) => {
        if (isObject(item) || Array.isArray(item)) {
          const nested = toYaml(item, `${indent}  `);
          if (nested.trim() === '{}' || nested.trim() === '[]') return `${indent}- ${nested.trim()}\n`;
          return `${indent}- ${nested.slice(indent.length + 2)}`;
        }
        return `${indent}- ${yamlScalar(item)}\n`;
      })
      .join('');
  }
  if (isObject(value)) {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    if (entries.length === 0) return `${indent}{}\n`;
    return entries
      .map(([k, v]) => {
        const key = yamlScalar(k);
        if ((isObject(v) && Object.keys(v).length > 0) || (Array.isArray(v) && v.length > 0)) return `${indent}${key}:\n${toYaml(v, `${indent}  `)}`;
        if (isObject(v)) return `${indent}${key}: {}\n`;
        if (Array.isArray(v)) return `${indent}${key}: []\n`;
        return `${indent}${key}: ${yamlScalar(v)}\n`;
      })
      .join('');
  }
  return `${indent}${yamlScalar(value)}\n`;
}
