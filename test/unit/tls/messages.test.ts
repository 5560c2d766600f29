/**
 * Codec properties: decode(encode(x)) = x for every message, every strict prefix
 * of a valid message is a decode_error, and random bytes never raise anything but our errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encode, type Writer } from '../../../src/tls/codec.js';
import { ExtensionType, HELLO_RETRY_REQUEST_RANDOM } from '../../../src/tls/constants.js';
import { DecodeError, PeerMisbehaved, TlsError, type PeerFault } from '../../../src/tls/errors.js';
import { decodeClientHelloAsWritten } from '../../fuzz/targets/tls-codec.js';

/** The error names what the peer did; PEER_FAULTS gives its alert. */
const faultIs =
  (fault: PeerFault) =>
  (e: unknown): boolean =>
    e instanceof PeerMisbehaved && e.fault === fault;
import {
  decodeAlert,
  decodeCertificate,
  decodeCertificateRequest,
  decodeCertificateVerify,
  decodeClientHello,
  decodeEncryptedExtensions,
  decodeKeyUpdate,
  decodeNewSessionTicket,
  decodeServerHello,
  writeCertificate,
  writeCertificateRequest,
  writeCertificateVerify,
  writeClientHello,
  writeEncryptedExtensions,
  writeNewSessionTicket,
  writeServerHello,
  type CertificateMessage,
  type CertificateRequest,
  type ClientHello,
  type ClientHelloExtensions,
  type EncryptedExtensions,
  type NewSessionTicket,
  type ServerHello,
} from '../../../src/tls/messages/index.js';

const knownTypes = new Set<number>(Object.values(ExtensionType));
const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u16List = (min = 1, max = 8) => fc.array(u16, { minLength: min, maxLength: max });
const token = fc.string({ minLength: 1, maxLength: 12, unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-./'.split('')) });
const unknownExtensions = fc.uniqueArray(
  fc.record({ type: u16.filter((t) => !knownTypes.has(t)), data: bytes(0, 20) }),
  { selector: (e) => e.type, maxLength: 3 },
);

const clientHelloArb: fc.Arbitrary<ClientHello> = fc
  .record(
    {
      serverName: token,
      supportedGroups: u16List(),
      signatureAlgorithms: u16List(),
      signatureAlgorithmsCert: u16List(),
      supportedVersions: u16List(1, 10),
      keyShares: fc.uniqueArray(fc.record({ group: u16, keyExchange: bytes(1, 40) }), { selector: (k) => k.group, maxLength: 3 }),
      pskKeyExchangeModes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 3 }),
      alpn: fc.array(token, { minLength: 1, maxLength: 3 }),
      cookie: bytes(1, 40),
      earlyData: fc.constant(true),
      postHandshakeAuth: fc.constant(true),
      delegatedCredential: u16List(),
      preSharedKey: fc.integer({ min: 1, max: 3 }).chain((n) =>
        fc.record({
          identities: fc.array(fc.record({ identity: bytes(1, 40), obfuscatedTicketAge: fc.integer({ min: 0, max: 0xffffffff }) }), { minLength: n, maxLength: n }),
          binders: fc.array(bytes(32, 48), { minLength: n, maxLength: n }),
        }),
      ),
    },
    { requiredKeys: [] },
  )
  .chain((ext) =>
    fc.record({
      legacyVersion: u16,
      random: bytes(32, 32),
      legacySessionId: bytes(0, 32),
      cipherSuites: u16List(1, 10),
      legacyCompressionMethods: bytes(1, 3),
      extensions: unknownExtensions.map((unknown) => ({ ...ext, unknown })),
    }),
  )
  // The extension block has a minimum of 8 bytes: ensure at least one sizeable extension.
  .filter((ch) => encode((w) => writeClientHello(w, ch)).length >= 2 + 32 + 1 + ch.legacySessionId.length + 2 + ch.cipherSuites.length * 2 + 1 + ch.legacyCompressionMethods.length + 2 + 8);

const serverHelloArb: fc.Arbitrary<ServerHello> = fc.boolean().chain((hrr) =>
  fc.record({
    legacyVersion: u16,
    random: hrr ? fc.constant(HELLO_RETRY_REQUEST_RANDOM) : bytes(32, 32),
    legacySessionIdEcho: bytes(0, 32),
    cipherSuite: u16,
    legacyCompressionMethod: fc.integer({ min: 0, max: 255 }),
    extensions: hrr
      ? fc.record({ supportedVersion: u16, selectedGroup: u16, cookie: bytes(1, 30) }, { requiredKeys: ['supportedVersion'] })
      : fc.record(
          { supportedVersion: u16, keyShare: fc.record({ group: u16, keyExchange: bytes(1, 40) }), preSharedKey: u16 },
          { requiredKeys: ['supportedVersion'] },
        ),
  }),
);

const encryptedExtensionsArb: fc.Arbitrary<EncryptedExtensions> = fc
  .record({ serverNameAck: fc.constant(true), supportedGroups: u16List(), alpn: token, earlyData: fc.constant(true) }, { requiredKeys: [] })
  .chain((e) => unknownExtensions.map((unknown) => ({ ...e, unknown })));

const certificateArb: fc.Arbitrary<CertificateMessage> = fc.record({
  context: bytes(0, 10),
  entries: fc.array(
    fc.record({
      data: bytes(1, 60),
      extensions: fc.uniqueArray(
        fc.record({ type: fc.constantFrom(ExtensionType.status_request, ExtensionType.signed_certificate_timestamp, ExtensionType.delegated_credential), data: bytes(0, 20) }),
        { selector: (e) => e.type, maxLength: 3 },
      ),
    }),
    { maxLength: 4 },
  ),
});

const certificateRequestArb: fc.Arbitrary<CertificateRequest> = fc
  .record(
    {
      context: bytes(0, 10),
      signatureAlgorithms: u16List(),
      signatureAlgorithmsCert: u16List(),
      delegatedCredential: u16List(),
      certificateAuthorities: fc.array(bytes(1, 20), { minLength: 1, maxLength: 3 }),
    },
    { requiredKeys: ['context', 'signatureAlgorithms'] },
  )
  .chain((cr) => unknownExtensions.map((unknown) => ({ ...cr, unknown })));

const ticketArb: fc.Arbitrary<NewSessionTicket> = fc
  .record(
    {
      lifetime: fc.integer({ min: 0, max: 604800 }),
      ageAdd: fc.integer({ min: 0, max: 0xffffffff }),
      nonce: bytes(0, 20),
      ticket: bytes(1, 80),
      earlyDataMaxSize: fc.integer({ min: 0, max: 0xffffffff }),
    },
    { requiredKeys: ['lifetime', 'ageAdd', 'nonce', 'ticket'] },
  )
  .chain((t) => unknownExtensions.map((unknown) => ({ ...t, unknown })));

interface Codec<T> {
  readonly name: string;
  readonly arb: fc.Arbitrary<T>;
  readonly write: (w: Writer, v: T) => void;
  readonly decode: (b: Uint8Array) => T;
  /**
   * The one strict prefix that is itself a valid message, if any: a ClientHello cut right
   * before its extension block is an extension-less (TLS 1.2-or-older) hello (Appendix D.2).
   */
  readonly validPrefix?: (encoded: Uint8Array) => number;
}

/** Where a ClientHello's extension block starts: after version, random, session id, suites, compression. */
function clientHelloExtensionsAt(encoded: Uint8Array): number {
  let at = 2 + 32;
  at += 1 + encoded[at]!;
  at += 2 + ((encoded[at]! << 8) | encoded[at + 1]!);
  return at + 1 + encoded[at]!;
}

const codecs: Codec<unknown>[] = [
  { name: 'ClientHello', arb: clientHelloArb, write: writeClientHello, decode: decodeClientHelloAsWritten, validPrefix: clientHelloExtensionsAt } as Codec<unknown>,
  { name: 'ServerHello/HelloRetryRequest', arb: serverHelloArb, write: writeServerHello, decode: decodeServerHello } as Codec<unknown>,
  { name: 'EncryptedExtensions', arb: encryptedExtensionsArb, write: writeEncryptedExtensions, decode: decodeEncryptedExtensions } as Codec<unknown>,
  { name: 'Certificate', arb: certificateArb, write: writeCertificate, decode: decodeCertificate } as Codec<unknown>,
  { name: 'CertificateRequest', arb: certificateRequestArb, write: writeCertificateRequest, decode: decodeCertificateRequest } as Codec<unknown>,
  {
    name: 'CertificateVerify',
    arb: fc.record({ scheme: u16, signature: bytes(1, 100) }),
    write: writeCertificateVerify,
    decode: decodeCertificateVerify,
  } as Codec<unknown>,
  { name: 'NewSessionTicket', arb: ticketArb, write: writeNewSessionTicket, decode: decodeNewSessionTicket } as Codec<unknown>,
];

/** Plain objects with plain Uint8Arrays, for deepStrictEqual across views and copies. */
function normalize(v: unknown): unknown {
  if (v instanceof Uint8Array) return Array.from(v);
  if (Array.isArray(v)) return v.map(normalize);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x)]));
  return v;
}

for (const c of codecs) {
  void test(`${c.name}: decode(encode(x)) equals x`, () => {
    fc.assert(
      fc.property(c.arb, (x) => {
        const encoded = encode((w) => c.write(w, x));
        assert.deepStrictEqual(normalize(c.decode(encoded)), normalize(x));
      }),
      { numRuns: 200 },
    );
  });

  void test(`${c.name}: every strict prefix of a valid encoding is a decode_error${c.validPrefix ? ' (but the one valid prefix)' : ''}`, () => {
    fc.assert(
      fc.property(c.arb, (x) => {
        const encoded = encode((w) => c.write(w, x));
        const valid = c.validPrefix?.(encoded);
        for (let n = 0; n < encoded.length; n++) {
          if (n === valid) {
            assert.doesNotThrow(() => c.decode(encoded.subarray(0, n)), `prefix of ${n}/${encoded.length} bytes`);
            continue;
          }
          assert.throws(() => c.decode(encoded.subarray(0, n)), DecodeError, `prefix of ${n}/${encoded.length} bytes`);
        }
      }),
      { numRuns: 50 },
    );
  });

  void test(`${c.name}: random bytes raise only TLS errors`, () => {
    fc.assert(
      fc.property(bytes(0, 300), (b) => {
        try {
          c.decode(b);
        } catch (e) {
          assert.ok(e instanceof TlsError, `unexpected ${String(e)}`);
        }
      }),
      { numRuns: 500 },
    );
  });

  void test(`${c.name}: mutated valid encodings raise only TLS errors`, () => {
    fc.assert(
      fc.property(c.arb, fc.nat(), fc.integer({ min: 0, max: 255 }), (x, at, value) => {
        const encoded = Uint8Array.from(encode((w) => c.write(w, x)));
        if (encoded.length > 0) encoded[at % encoded.length] = value;
        try {
          c.decode(encoded);
        } catch (e) {
          assert.ok(e instanceof TlsError, `unexpected ${String(e)}`);
        }
      }),
      { numRuns: 300 },
    );
  });
}

/** A TLS 1.3 ClientHello with one suite and the given extensions, encoded. */
function minimalClientHello(extensions: ClientHelloExtensions): Uint8Array {
  return encode((w) =>
    writeClientHello(w, {
      legacyVersion: 0x0303,
      random: new Uint8Array(32),
      legacySessionId: new Uint8Array(0),
      cipherSuites: [0x1301],
      legacyCompressionMethods: Uint8Array.of(0),
      extensions,
    }),
  );
}

void test('a ClientHello with a duplicated extension is illegal_parameter', () => {
  const ch = minimalClientHello({ unknown: [{ type: 0x1234, data: Uint8Array.of(1) }, { type: 0x1234, data: Uint8Array.of(2) }] });
  assert.throws(() => decodeClientHello(ch), faultIs('DuplicateExtension'));
});

void test('a ClientHello whose pre_shared_key is not the last extension is illegal_parameter', () => {
  const psk = { identities: [{ identity: Uint8Array.of(1), obfuscatedTicketAge: 0 }], binders: [new Uint8Array(32)] };
  const base = minimalClientHello({ preSharedKey: psk, unknown: [] });
  // Append one more (empty, unknown) extension after pre_shared_key and fix the block length.
  const withTrailing = Buffer.concat([base, Uint8Array.of(0x12, 0x34, 0, 0)]);
  const extStart = 2 + 32 + 1 + 0 + 2 + 2 + 1 + 1;
  withTrailing.writeUInt16BE(withTrailing.readUInt16BE(extStart) + 4, extStart);
  assert.throws(() => decodeClientHello(withTrailing), faultIs('PreSharedKeyNotLast'));
});

void test('a server_name with a control character (BEL, ESC, DEL) or a byte over 0x7e is illegal_parameter; printable ASCII decodes', () => {
  const hello = (name: string) => minimalClientHello({ serverName: name, unknown: [] });
  for (const bad of ['localhos\x07t', 'a\x1b[31mb.example', 'x\x7f.example', 'caf\xe9.example', 'nul\x00.example']) {
    assert.throws(() => decodeClientHello(hello(bad)), faultIs('ServerNameNotAscii'), JSON.stringify(bad));
  }
  assert.equal(decodeClientHello(hello('api-1.example.test')).extensions.serverName, 'api-1.example.test');
});

void test('two key shares for one group are illegal_parameter', () => {
  const share = { group: 0x001d, keyExchange: new Uint8Array(32) };
  const ch = minimalClientHello({ keyShares: [share, share], unknown: [] });
  assert.throws(() => decodeClientHello(ch), faultIs('DuplicateKeyShareGroup'));
});

void test('a ClientHello of 12,000 one-byte key shares decodes, and a duplicate as the last of them is found (a Set, not a search per share)', () => {
  const shares = Array.from({ length: 12_000 }, (_, i) => ({ group: 0x2000 + i, keyExchange: Uint8Array.of(1) }));
  assert.equal(decodeClientHello(minimalClientHello({ keyShares: shares, unknown: [] })).extensions.keyShares?.length, 12_000);
  const duplicated = [...shares, { group: 0x2000, keyExchange: Uint8Array.of(2) }];
  assert.throws(() => decodeClientHello(minimalClientHello({ keyShares: duplicated, unknown: [] })), faultIs('DuplicateKeyShareGroup'));
});

void test('a ServerHello with an extension the client never offered is unsupported_extension', () => {
  const sh = encode((w) =>
    writeServerHello(w, {
      legacyVersion: 0x0303,
      random: new Uint8Array(32).fill(1),
      legacySessionIdEcho: new Uint8Array(0),
      cipherSuite: 0x1301,
      legacyCompressionMethod: 0,
      extensions: { supportedVersion: 0x0304 },
    }),
  );
  const extra = Buffer.concat([sh, Uint8Array.of(0x77, 0x77, 0, 0)]);
  const at = 2 + 32 + 1 + 2 + 1;
  extra.writeUInt16BE(extra.readUInt16BE(at) + 4, at);
  assert.throws(() => decodeServerHello(extra), (e: unknown) => e instanceof TlsError && e.alert === 110);
});

void test('KeyUpdate accepts only 0 and 1, and alerts are exactly two bytes', () => {
  assert.equal(decodeKeyUpdate(Uint8Array.of(1)), 1);
  assert.throws(() => decodeKeyUpdate(Uint8Array.of(2)), faultIs('IllegalKeyUpdateRequest'));
  assert.throws(() => decodeKeyUpdate(Uint8Array.of(0, 0)), DecodeError);
  assert.deepEqual(decodeAlert(Uint8Array.of(2, 40)), { level: 2, description: 40 });
  assert.throws(() => decodeAlert(Uint8Array.of(2)), DecodeError);
  assert.throws(() => decodeAlert(Uint8Array.of(2, 40, 0)), DecodeError);
});
