/**
 * A signing worker thread of the key server's SigningPool. It keeps the keys it has been sent
 * (by SKI) and answers sign jobs one at a time; every failure goes back as a protocol error code.
 */
import { parentPort } from 'node:worker_threads';
import type { KeyObject } from 'node:crypto';
import { KeylessError } from './errors.js';
import { SigningKey } from './keystore.js';
import { ErrorCode } from './protocol.js';
import { signRequestOf } from './sign-request.js';
import type { WorkerControl, WorkerJob, WorkerResult } from './sign-pool.js';

const keys = new Map<string, SigningKey>();

function run(job: WorkerJob): WorkerResult {
  try {
    if (job.key) keys.set(job.skiHex, new SigningKey(job.key as KeyObject, 'pool'));
    const key = keys.get(job.skiHex);
    if (!key) return { id: job.id, ok: false, code: ErrorCode.keyNotFound, message: `no key ${job.skiHex} in worker` };
    const request = signRequestOf(job.opcode, job.payload);
    if (!request) return { id: job.id, ok: false, code: ErrorCode.badOpcode, message: `opcode ${job.opcode}` };
    return { id: job.id, ok: true, signature: key.sign(request) };
  } catch (err) {
    const code = err instanceof KeylessError ? err.code : ErrorCode.internalError;
    return { id: job.id, ok: false, code, message: err instanceof Error ? err.message : String(err) };
  }
}

parentPort?.on('message', (message: WorkerJob | WorkerControl) => {
  if ('retain' in message) {
    const keep = new Set(message.retain);
    for (const ski of [...keys.keys()]) if (!keep.has(ski)) keys.delete(ski);
    return;
  }
  if ('countKeys' in message) {
    parentPort?.postMessage({ countKeys: message.countKeys, held: keys.size } satisfies WorkerResult);
    return;
  }
  // Signatures are a few hundred bytes: copying beats transferring a possibly shared buffer.
  parentPort?.postMessage(run(message));
});
