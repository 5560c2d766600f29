/**
 * The sidecar's ClientHello peek (src/sidecar/client-hello-peek.ts): byte 0 says how the rest is
 * cut into chunks. The verdict must not depend on the cut (the same input pushed whole gives the
 * same result), `buffered` must be exactly the bytes pushed, and a refusal names a real alert.
 * The peeker turns every decode failure into a verdict, so a thrown error is always a crash.
 */
import { AlertDescription } from '../../../src/tls/alerts.js';
import { ClientHelloPeeker, type PeekResult } from '../../../src/sidecar/client-hello-peek.js';
import { bytesEqual, canonical, check, chunked, type FuzzTarget } from '../target.js';
import { TLS_DICTIONARY } from './tls-dictionary.js';

const ALERTS = new Set<number>(Object.values(AlertDescription));

function verdict(r: PeekResult): string {
  if (r.kind === 'client-hello') return `client-hello ${r.recordVersion} ${canonical(r.hello)}`;
  if (r.kind === 'not-tls') return `not-tls alert ${r.alert}`;
  return 'need-more';
}

export const target: FuzzTarget = {
  description: 'chunking byte + the first bytes of a connection; verdict independent of chunking',
  maxLength: 20000,
  dictionary: TLS_DICTIONARY,
  modules: ['src/sidecar/client-hello-peek', 'src/tls/messages/', 'src/tls/codec'],
  run(data) {
    if (data.length === 0) return;
    const stream = data.subarray(1);
    const cut = new ClientHelloPeeker();
    let result: PeekResult = { kind: 'need-more' };
    let pushed = 0;
    for (const chunk of chunked(data)) {
      result = cut.push(chunk);
      pushed += chunk.length;
      if (result.kind !== 'need-more') break;
    }
    check(bytesEqual(cut.buffered, stream.subarray(0, pushed)), 'buffered differs from the bytes pushed');
    if (result.kind === 'not-tls') {
      check(ALERTS.has(result.alert) && result.alert !== AlertDescription.internal_error, `refusal with alert ${result.alert}: ${result.reason}`);
    }
    const whole = new ClientHelloPeeker();
    const once = stream.length > 0 ? whole.push(stream) : ({ kind: 'need-more' } as const);
    check(verdict(once) === verdict(result), `pushed whole: ${verdict(once).slice(0, 200)}; pushed in chunks: ${verdict(result).slice(0, 200)}`);
  },
  expected: () => false,
};
