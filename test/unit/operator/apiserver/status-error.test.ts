// A refusal's Status body becomes a typed error that statusCodeOf() (the informer's and every
// caller's test for 404/409/410) reads.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { ApiStatusError, parseStatus } from '../../../../src/operator/apiserver/status-error.js';
import { statusCodeOf } from '../../../../src/operator/informer.js';

const table: { name: string; http: number; body: string; code: number; reason: string; message: RegExp }[] = [
  {
    name: 'a NotFound Status',
    http: 404,
    body: JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'secrets "x" not found', reason: 'NotFound', code: 404 }),
    code: 404,
    reason: 'NotFound',
    message: /^GET \/api\/v1\/namespaces\/a\/secrets\/x: 404 NotFound: secrets "x" not found$/,
  },
  {
    name: 'a Conflict Status',
    http: 409,
    body: JSON.stringify({ kind: 'Status', message: 'the object has been modified', reason: 'Conflict', code: 409 }),
    code: 409,
    reason: 'Conflict',
    message: /409 Conflict: the object has been modified/,
  },
  { name: 'a body that is not a Status (a proxy page)', http: 502, body: '<html>bad gateway</html>', code: 502, reason: '', message: /502: \(no Status in the response\)/ },
  { name: 'a Status without a code: the HTTP status', http: 403, body: JSON.stringify({ kind: 'Status', reason: 'Forbidden', message: 'no' }), code: 403, reason: 'Forbidden', message: /403 Forbidden: no/ },
  { name: 'JSON that is not a Status', http: 500, body: '[1,2]', code: 500, reason: '', message: /500/ },
];

for (const c of table) {
  void it(`maps ${c.name} to an ApiStatusError`, () => {
    const err = new ApiStatusError('GET', '/api/v1/namespaces/a/secrets/x', c.http, parseStatus(c.body));
    assert.equal(err.code, c.code);
    assert.equal(err.statusCode, c.code);
    assert.equal(statusCodeOf(err), c.code);
    assert.equal(err.reason, c.reason);
    assert.match(err.message, c.message);
    assert.match(String(err), /^ApiStatusError: /);
  });
}

void it('a watch ERROR event object (a Status 410) reads as 410 too, as the informer relists on it', () => {
  assert.equal(statusCodeOf(parseStatus(JSON.stringify({ kind: 'Status', code: 410, reason: 'Expired' }))), 410);
});
