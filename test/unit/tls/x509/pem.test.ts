import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { derToPem, pemBlocks, pemToDers, type PemScanWork } from '../../../../src/tls/x509/pem.js';

const block = (label: string, bytes: number[]): string => derToPem(Uint8Array.from(bytes), label);

void describe('pemBlocks', () => {
  void it('finds every complete block in order, with its label, body and whole text', () => {
    const a = block('CERTIFICATE', [1, 2, 3]);
    const b = block('PRIVATE KEY', [4, 5]);
    const blocks = pemBlocks(`header text\n${a}between\n${b}trailer`);
    assert.deepEqual(
      blocks.map((x) => [x.label, x.text]),
      [
        ['CERTIFICATE', a.trimEnd()],
        ['PRIVATE KEY', b.trimEnd()],
      ],
    );
    assert.equal(blocks[0]!.body.replace(/\s+/g, ''), Buffer.from([1, 2, 3]).toString('base64'));
  });

  void it('skips a BEGIN line without its END and goes on after it, as the lazy regular expression did', () => {
    const a = block('CERTIFICATE', [9]);
    // An END of another label does not close a block; a later END of the same label does.
    const text = `-----BEGIN RSA PRIVATE KEY-----\nxx\n-----END EC PRIVATE KEY-----\n${a}-----BEGIN X-----\n`;
    assert.deepEqual(
      pemBlocks(text).map((x) => x.label),
      ['CERTIFICATE'],
    );
    assert.deepEqual(pemToDers(text, 'CERTIFICATE'), [Uint8Array.of(9)]);
  });

  void it('takes the first END of the label, and nothing inside a block starts another', () => {
    const text = '-----BEGIN A-----\n-----BEGIN B-----\nb\n-----END B-----\n-----END A-----\n-----END A-----\n';
    const blocks = pemBlocks(text);
    assert.deepEqual(
      blocks.map((x) => x.label),
      ['A'],
    );
    assert.match(blocks[0]!.body, /BEGIN B/);
  });

  void it('ignores runs of dashes, lower-case and over-long labels', () => {
    const long = 'L'.repeat(65);
    const text = `----------\n-----BEGIN abc-----\n-----END abc-----\n-----BEGIN ${long}-----\nx\n-----END ${long}-----\n${block('OK', [1])}`;
    assert.deepEqual(
      pemBlocks(text).map((x) => x.label),
      ['OK'],
    );
  });

  void it('is linear: 100,000 BEGIN lines without END cost a few steps per character, not one scan of the rest per line', () => {
    const line = '-----BEGIN CERTIFICATE-----\n';
    const text = line.repeat(100_000) + block('CERTIFICATE', [7]);
    const work: PemScanWork = { steps: 0 };
    const blocks = pemBlocks(text, work);
    // The first BEGIN line takes the only END line, as the regular expression did.
    assert.equal(blocks.length, 1);
    assert.equal(blocks[0]!.text.length, text.length - 1);
    assert.ok(work.steps <= 3 * text.length, `${work.steps} steps for ${text.length} characters`);
    // A quadratic scan would look at about lines × length / 2 = 1.4e11 characters.
    assert.ok(work.steps < 1e7);
  });

  void it('is linear with many distinct labels too', () => {
    const text = Array.from({ length: 50_000 }, (_, i) => `-----BEGIN L${i}-----\n-----END M${i}-----\n`).join('');
    const work: PemScanWork = { steps: 0 };
    assert.deepEqual(pemBlocks(text, work), []);
    assert.ok(work.steps <= 3 * text.length, `${work.steps} steps for ${text.length} characters`);
  });
});
