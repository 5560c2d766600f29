// The controller's logger: the shared JSON log line of every process (src/net/log.ts).
import { createJsonLog, type Log } from '../net/log.js';

export function createLogger(level = process.env['LOG_LEVEL'] ?? 'info', component = 'controller'): Log {
  return createJsonLog({ component, level });
}
