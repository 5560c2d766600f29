// JSON logs (winston). Every line about an object carries its namespace and name as fields.
import winston from 'winston';
import type { Logger } from './ports.js';

export function createLogger(level = process.env['LOG_LEVEL'] ?? 'info', component = 'controller'): Logger & { child(meta: Record<string, unknown>): Logger } {
  return winston.createLogger({
    level,
    defaultMeta: { component },
    format: winston.format.combine(winston.format.timestamp(), winston.format.errors({ stack: true }), winston.format.json()),
    transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] })],
  });
}
