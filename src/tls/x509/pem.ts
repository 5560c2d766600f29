/**
 * PEM (RFC 7468) to DER and back.
 */
import { CertificateError } from './errors.js';

const PEM_RE = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

/**
 * All DER blocks with the given label (e.g. 'CERTIFICATE'), in order. Blocks with other labels
 * are skipped. Throws on a block whose base64 body is invalid.
 */
export function pemToDers(pem: string, label: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const m of pem.matchAll(PEM_RE)) {
    if (m[1] !== label) continue;
    const body = m[2]!.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body) || body.length % 4 !== 0) {
      throw new CertificateError('bad_certificate', 'malformed', `PEM ${label} block #${out.length} has an invalid base64 body`);
    }
    out.push(new Uint8Array(Buffer.from(body, 'base64')));
  }
  return out;
}

export function derToPem(der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/**
 * The CERTIFICATE blocks of a PEM bundle re-encoded from their DER, and the labels of the private
 * key blocks it also held (a "combined PEM": certificate followed by its key). For passing a
 * `tls.crt` on: rebuilt from the parsed DER, nothing else in the input (other blocks, text around
 * them, a key) can travel with it. Throws like pemToDers on a CERTIFICATE block that is not base64.
 */
export function certificatesOfPem(pem: string): { ders: Uint8Array[]; pem: string; privateKeyLabels: string[] } {
  const ders = pemToDers(pem, 'CERTIFICATE');
  // BEGIN lines, not whole blocks: a key whose END line is damaged is still a key.
  const privateKeyLabels = [...pem.matchAll(/-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----/g)].map((m) => m[1] ?? '');
  return { ders, pem: ders.map((d) => derToPem(d, 'CERTIFICATE')).join(''), privateKeyLabels };
}
