/**
 * The one log format of every process (controller, webhook, sidecar, key server, and the dcctl /
 * dc-operator commands that log): one JSON object per line on stderr,
 *
 *   {"ts":"2026-01-02T03:04:05.678Z","level":"info","component":"sidecar","msg":"drained","finished":3}
 *
 * The names are those of Kubernetes structured logging (`ts`, `msg`: the component-base JSON
 * format) and of controller-runtime's zap logger (`level` as a word), so a cluster log pipeline
 * that already parses kube components and operators parses ours without a per-process rule.
 * `ts` is RFC 3339 in UTC with milliseconds (zap's ISO 8601 encoder, not epoch seconds): it sorts
 * as text and Fluent Bit, Vector and Loki read it without being told the unit. docs/operations.md
 * documents the fields; test/unit/net/log.test.ts checks every process's logger emits them.
 *
 * Written by hand rather than with a logging library: a line is written synchronously, in order,
 * through an injectable sink and clock, which is what the CLI tests and a crashing process need.
 */

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** What every module that logs takes: `fields` are extra keys of the line. */
export interface Log {
  error(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
}

/** The keys every line starts with; a field of the same name is written as `field.<name>`. */
export const LOG_SCHEMA_KEYS = ['ts', 'level', 'component', 'msg'] as const;

export interface JsonLogOptions {
  /** The process: controller, webhook, sidecar, keyserver. */
  readonly component: string;
  /** Lines below this level are dropped (default info). */
  readonly level?: string;
  /** Where a line (with its newline) goes; default stderr, where a pod's log collector reads. */
  readonly write?: (line: string) => void;
  readonly now?: () => Date;
}

export function isLogLevel(text: string): text is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(text);
}

/** An Error is written as its message: JSON.stringify would write `{}`. */
function fieldValue(value: unknown): unknown {
  return value instanceof Error ? value.message : value;
}

/** One line of the schema, newline included. */
export function formatLogLine(ts: Date, level: LogLevel, component: string, msg: string, fields?: Record<string, unknown>): string {
  const line: Record<string, unknown> = { ts: ts.toISOString(), level, component, msg };
  if (fields) {
    for (const [key, value] of Object.entries(fields)) {
      line[(LOG_SCHEMA_KEYS as readonly string[]).includes(key) ? `field.${key}` : key] = fieldValue(value);
    }
  }
  return `${JSON.stringify(line)}\n`;
}

export function createJsonLog(options: JsonLogOptions): Log {
  const level = options.level ?? 'info';
  if (!isLogLevel(level)) throw new Error(`log level "${level}" is not one of ${LOG_LEVELS.join(', ')}`);
  const threshold = LOG_LEVELS.indexOf(level);
  const write = options.write ?? ((line: string) => void process.stderr.write(line));
  const now = options.now ?? (() => new Date());
  const at = (l: LogLevel) =>
    LOG_LEVELS.indexOf(l) > threshold
      ? () => {}
      : (msg: string, fields?: Record<string, unknown>) => write(formatLogLine(now(), l, options.component, msg, fields));
  return { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') };
}
