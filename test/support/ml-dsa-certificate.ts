// An ML-DSA certificate for tests: neither OpenSSL 3.0's CLI nor the PKI helpers make ML-DSA ones,
// so it is made with node:crypto (Node 24 signs with ML-DSA) and our DER encoder.
import { generateKeyPairSync, sign } from 'node:crypto';
import { DerTag, encodeTlv, encodeUnsignedInteger } from '../../src/tls/x509/der.js';

/** OIDs of id-ml-dsa-44/65/87 (FIPS 204, NIST CSOR 2.16.840.1.101.3.4.3.17-19), DER with their tag. */
const ML_DSA_OID = { 'ml-dsa-44': 0x11, 'ml-dsa-65': 0x12, 'ml-dsa-87': 0x13 } as const;

/** A self-signed ML-DSA certificate (CN = `commonName`, valid for an hour) and its key (PKCS#8), both PEM. */
export function mlDsaSelfSigned(type: keyof typeof ML_DSA_OID, commonName: string): { certPem: string; keyPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync(type as 'ml-dsa-65');
  const algorithm = encodeTlv(DerTag.sequence, Uint8Array.of(0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, ML_DSA_OID[type]));
  const cn = Uint8Array.of(0x06, 0x03, 0x55, 0x04, 0x03);
  const name = encodeTlv(DerTag.sequence, encodeTlv(0x31, encodeTlv(DerTag.sequence, cn, encodeTlv(0x0c, new TextEncoder().encode(commonName)))));
  const time = (d: Date): Uint8Array => encodeTlv(DerTag.utcTime, new TextEncoder().encode(d.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z'));
  const now = Date.now();
  const tbs = encodeTlv(
    DerTag.sequence,
    encodeTlv(0xa0, encodeUnsignedInteger(2n)),
    encodeUnsignedInteger(BigInt(now)),
    algorithm,
    name,
    encodeTlv(DerTag.sequence, time(new Date(now - 60_000)), time(new Date(now + 3_600_000))),
    name,
    new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })),
  );
  const der = encodeTlv(DerTag.sequence, tbs, algorithm, encodeTlv(DerTag.bitString, Uint8Array.of(0), sign(null, tbs, privateKey)));
  const certPem = `-----BEGIN CERTIFICATE-----\n${Buffer.from(der).toString('base64').match(/.{1,64}/g)!.join('\n')}\n-----END CERTIFICATE-----\n`;
  return { certPem, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}
