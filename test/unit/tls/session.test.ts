import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createDecipheriv, randomBytes } from 'node:crypto';
import { Writer } from '../../../src/tls/codec.js';
import { TicketKey, type TicketState } from '../../../src/tls/session.js';

const state: TicketState = {
  cipherSuite: 0x1302,
  psk: randomBytes(48),
  issuedAt: 1_764_000_000_123,
  ageAdd: 0xfedcba98,
  lifetimeSeconds: 7200,
  servername: 'api.example.test',
  alpnProtocol: 'h2',
  clientCertificate: randomBytes(700),
};

void test('a sealed ticket opens to the same state under the same key', () => {
  const key = new TicketKey();
  const opened = key.open(key.seal(state));
  assert.ok(opened);
  assert.deepEqual({ ...opened, psk: Buffer.from(opened.psk), clientCertificate: Buffer.from(opened.clientCertificate) }, {
    ...state,
    psk: Buffer.from(state.psk),
    clientCertificate: Buffer.from(state.clientCertificate),
  });
});

void test('a ticket is version || nonce || AES-256-GCM(version || state) || tag, whichever AEAD sealed it (native or node:crypto)', () => {
  // Sealed through the native AEAD when it loaded (DC_TLS_AEAD=node: node:crypto), opened here by node:crypto.
  const raw = new Uint8Array(32).fill(7);
  const ticket = Buffer.from(new TicketKey(raw).seal(state));
  const d = createDecipheriv('aes-256-gcm', raw, ticket.subarray(1, 13));
  d.setAuthTag(ticket.subarray(ticket.length - 16));
  const plain = Buffer.concat([d.update(ticket.subarray(13, ticket.length - 16)), d.final()]);
  assert.equal(ticket[0], 2);
  assert.equal(plain[0], 2);
  assert.equal(plain.readUInt16BE(1), state.cipherSuite);
  assert.ok(plain.subarray(4, 4 + 48).equals(state.psk));
});

void test('a ticket with a client certificate larger than one record (60 KB) seals and opens (the native AEAD takes at most 32 KiB: node:crypto then)', () => {
  const key = new TicketKey();
  const big = { ...state, clientCertificate: randomBytes(60_000) };
  const opened = key.open(key.seal(big));
  assert.ok(opened);
  assert.ok(Buffer.from(opened.clientCertificate).equals(big.clientCertificate));
});

void test('two tickets of the same state differ (fresh nonce each)', () => {
  const key = new TicketKey();
  assert.notDeepEqual(Buffer.from(key.seal(state)), Buffer.from(key.seal(state)));
});

void test('a ticket with any single byte changed, truncated, or from another key does not open', () => {
  const key = new TicketKey(new Uint8Array(32).fill(1));
  const ticket = Buffer.from(key.seal({ ...state, clientCertificate: new Uint8Array(0), servername: '', alpnProtocol: '' }));
  for (let i = 0; i < ticket.length; i++) {
    const t = Buffer.from(ticket);
    t[i] = t[i]! ^ 0x01;
    assert.equal(key.open(t), undefined, `byte ${i}`);
  }
  for (let n = 0; n < ticket.length; n++) assert.equal(key.open(ticket.subarray(0, n)), undefined, `prefix ${n}`);
  assert.equal(new TicketKey(new Uint8Array(32).fill(2)).open(ticket), undefined);
  assert.ok(key.open(ticket));
});

void test('sealing a ticket leaves its secret nowhere in the codec pool that later messages are cut from', () => {
  // The plaintext is encoded by a Writer, which carves from a pool shared by every message.
  const psk = Buffer.alloc(48, 0xab);
  new TicketKey().seal({ ...state, psk, clientCertificate: new Uint8Array(0) });
  const next = new Writer(16).u16(0x0303).finish();
  assert.equal(Buffer.from(next.buffer).indexOf(psk), -1, 'the PSK is still in the pool');
});
