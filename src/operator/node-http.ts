// node:http through require(), not an ES module import. Node builds an ES module namespace of a
// builtin from all its exports, and node:http's lazy WebSocket, CloseEvent and MessageEvent
// exports then load undici, node:http2 and web streams: +14 MiB of RSS (+2.4 MiB of heap) in a
// process that uses none of them (bench/results/operator.md, issue 19, sixth session).
// test/unit/operator/runtime-imports.test.ts fails when the controller loads undici again.
import { createRequire } from 'node:module';
import type * as Http from 'node:http';

const http = createRequire(import.meta.url)('node:http') as typeof Http;

export const { Agent, createServer, request } = http;
export type Agent = Http.Agent;
