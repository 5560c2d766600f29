/**
 * PEM (RFC 7468) to DER and back.
 */
import { CertificateError } from './errors.js';

/** One `-----BEGIN L-----` ... `-----END L-----` block. */
export interface PemBlock {
  readonly label: string;
  /** What lies between the two lines (base64 and line breaks, maybe headers). */
  readonly body: string;
  /** The whole block, BEGIN line to END line, as it stands in the input. */
  readonly text: string;
}

/** Characters the scanner looked at (tests: the work is linear in the input). */
export interface PemScanWork {
  steps: number;
}

const BOUNDARY = '-----';
/** RFC 7468 labels are short words; a longer run of label characters is not a boundary line. */
const MAX_LABEL_LENGTH = 64;

interface Marker {
  readonly begin: boolean;
  readonly label: string;
  readonly start: number;
  readonly end: number;
}

/** Whether a character may appear in a label: A-Z, 0-9, space (what every PEM writer uses). */
function isLabelChar(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x20;
}

/** The BEGIN and END lines of `pem`, in order: one pass, each character looked at a bounded number of times. */
function markersOf(pem: string, work: PemScanWork): Marker[] {
  const markers: Marker[] = [];
  let pos = 0;
  for (;;) {
    const at = pem.indexOf(BOUNDARY, pos);
    work.steps += (at < 0 ? pem.length : at + BOUNDARY.length) - pos;
    if (at < 0) return markers;
    const kindAt = at + BOUNDARY.length;
    const begin = pem.startsWith('BEGIN ', kindAt);
    const labelAt = begin ? kindAt + 6 : pem.startsWith('END ', kindAt) ? kindAt + 4 : -1;
    let labelEnd = labelAt;
    if (labelAt >= 0) {
      while (labelEnd < pem.length && labelEnd - labelAt <= MAX_LABEL_LENGTH && isLabelChar(pem.charCodeAt(labelEnd))) labelEnd++;
      work.steps += labelEnd - labelAt;
    }
    if (labelAt >= 0 && labelEnd > labelAt && labelEnd - labelAt <= MAX_LABEL_LENGTH && pem.startsWith(BOUNDARY, labelEnd)) {
      const end = labelEnd + BOUNDARY.length;
      markers.push({ begin, label: pem.slice(labelAt, labelEnd), start: at, end });
      pos = end;
    } else {
      pos = at + 1; // a run of dashes, or text that only looks like a boundary: look again one further
    }
  }
}

/**
 * Every complete PEM block, in order: a BEGIN line and the first END line of the same label after
 * it. A BEGIN line without its END is skipped, and the scan goes on after it (as a lazy regular
 * expression would, without its cost: such a regex searches the rest of the input once per BEGIN
 * line, quadratic in a file of BEGIN lines without END; this is linear whatever the input).
 */
export function pemBlocks(pem: string, work: PemScanWork = { steps: 0 }): PemBlock[] {
  const markers = markersOf(pem, work);
  // For each marker, the index of the next END marker of its label (backwards: one pass).
  const nextEnd = new Array<number>(markers.length);
  const endOf = new Map<string, number>();
  for (let i = markers.length - 1; i >= 0; i--) {
    const m = markers[i]!;
    nextEnd[i] = endOf.get(m.label) ?? -1;
    if (!m.begin) endOf.set(m.label, i);
    work.steps++;
  }
  const blocks: PemBlock[] = [];
  let pos = 0;
  for (let i = 0; i < markers.length; i++) {
    const m = markers[i]!;
    work.steps++;
    if (!m.begin || m.start < pos || nextEnd[i]! < 0) continue;
    const end = markers[nextEnd[i]!]!;
    blocks.push({ label: m.label, body: pem.slice(m.end, end.start), text: pem.slice(m.start, end.end) });
    pos = end.end;
  }
  return blocks;
}

/**
 * All DER blocks with the given label (e.g. 'CERTIFICATE'), in order. Blocks with other labels
 * are skipped. Throws on a block whose base64 body is invalid.
 */
export function pemToDers(pem: string, label: string): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const block of pemBlocks(pem)) {
    if (block.label !== label) continue;
    const body = block.body.replace(/\s+/g, '');
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
