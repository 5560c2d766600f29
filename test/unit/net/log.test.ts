/**
 * One log line schema for every process (src/net/log.ts): each process's logger is made to
 * write a line, and the line is checked field by field. A source scan keeps a second logger from
 * appearing: no module but src/net/log.ts builds log lines or imports a logging library.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { sourceFiles } from '../../support/sources.js';
import { createJsonLog, formatLogLine, LOG_SCHEMA_KEYS, type Log } from '../../../src/net/log.js';
import { createLogger as controllerLogger } from '../../../src/operator/logger.js';
import { createLogger as sidecarLogger } from '../../../src/sidecar/main.js';
import { defaultLogger as webhookLogger } from '../../../src/webhook/main.js';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');
const RFC3339_MS_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

function parseLine(text: string): Record<string, unknown> {
  assert.ok(text.endsWith('\n') && !text.slice(0, -1).includes('\n'), `one line: ${JSON.stringify(text)}`);
  return JSON.parse(text) as Record<string, unknown>;
}

function assertSchema(line: Record<string, unknown>, component: string, level: string, msg: string): void {
  assert.deepEqual(Object.keys(line).slice(0, 4), [...LOG_SCHEMA_KEYS], 'ts, level, component, msg come first');
  assert.match(String(line['ts']), RFC3339_MS_UTC);
  assert.equal(line['level'], level);
  assert.equal(line['component'], component);
  assert.equal(line['msg'], msg);
  for (const old of ['time', 'timestamp', 'message']) assert.ok(!(old in line), `no "${old}" key`);
}

void describe('the JSON log line', () => {
  void it('puts ts, level, component and msg first, then the fields', () => {
    const text = formatLogLine(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 678)), 'warn', 'sidecar', 'drained', { finished: 3, cut: 0 });
    assert.equal(text, '{"ts":"2026-01-02T03:04:05.678Z","level":"warn","component":"sidecar","msg":"drained","finished":3,"cut":0}\n');
  });

  void it('keeps a field named like a schema key from overwriting it, and writes an Error as its message', () => {
    const line = parseLine(formatLogLine(new Date(0), 'info', 'webhook', 'admission', { msg: 'pod refused', level: 'x', error: new Error('boom') }));
    assertSchema(line, 'webhook', 'info', 'admission');
    assert.equal(line['field.msg'], 'pod refused');
    assert.equal(line['field.level'], 'x');
    assert.equal(line['error'], 'boom');
  });

  void it('drops lines below the level, and refuses a level it does not know, naming the ones it does', () => {
    const lines: string[] = [];
    const log = createJsonLog({ component: 'controller', level: 'warn', write: (l) => lines.push(l) });
    log.debug('d');
    log.info('i');
    log.warn('w');
    log.error('e');
    assert.deepEqual(lines.map((l) => parseLine(l)['level']), ['warn', 'error']);
    assert.throws(() => createJsonLog({ component: 'controller', level: 'verbose' }), /log level "verbose" is not one of error, warn, info, debug/);
  });
});

void describe("every process's logger writes the schema to stderr", () => {
  let written: string[];
  let original: typeof process.stderr.write;
  beforeEach(() => {
    written = [];
    original = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    }) as typeof process.stderr.write;
  });
  afterEach(() => {
    process.stderr.write = original;
  });

  const processes: Array<[string, () => Pick<Log, 'info'>]> = [
    ['controller', () => controllerLogger('debug')],
    ['webhook', () => webhookLogger()],
    ['sidecar', () => sidecarLogger('debug')],
    // The key server and the dcctl / dc-operator commands build theirs with createJsonLog and the
    // command's stderr (src/cli/commands/*.ts); the scan below keeps them on it.
    ['keyserver', () => createJsonLog({ component: 'keyserver' })],
  ];
  for (const [component, make] of processes) {
    void it(component, () => {
      make().info('listening', { port: 8443 });
      process.stderr.write = original;
      assert.equal(written.length, 1);
      const line = parseLine(written[0]!);
      assertSchema(line, component, 'info', 'listening');
      assert.equal(line['port'], 8443);
    });
  }
});

void describe('one logger module', () => {
  void it('no source file but src/net/log.ts imports a logging library or writes a log line of its own', () => {
    const offenders: string[] = [];
    for (const file of sourceFiles(join(repo, 'src'))) {
      const rel = relative(repo, file);
      if (rel === join('src', 'net', 'log.ts')) continue;
      const text = readFileSync(file, 'utf8');
      if (/from ['"](winston|pino|bunyan)['"]/.test(text)) offenders.push(`${rel}: imports a logging library`);
      if (/JSON\.stringify\(\{\s*(time|timestamp|ts)\s*:/.test(text)) offenders.push(`${rel}: builds a log line`);
    }
    assert.deepEqual(offenders, []);
  });

  void it('every command that runs a long-lived process logs through createJsonLog', () => {
    for (const command of ['controller', 'webhook', 'keyserver']) {
      const text = readFileSync(join(repo, 'src', 'cli', 'commands', `${command}.ts`), 'utf8');
      assert.match(text, new RegExp(`createJsonLog\\(\\{ component: '${command}'`), `${command}.ts`);
    }
    assert.match(readFileSync(join(repo, 'src', 'cli', 'commands', 'sidecar.ts'), 'utf8'), /serveUntilSignal\(/, 'the sidecar command logs through sidecar/main.ts createLogger');
  });
});
