import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { validateServingMaterial, type ServingMaterial } from '../../../src/sidecar/material.js';
import { readiness, SidecarStatus, InvalidTransition } from '../../../src/sidecar/status.js';
import { credentialFiles, makePki, type TestPki } from './fixtures.js';

function toFileMap(files: Record<string, string | Uint8Array>): Record<string, Uint8Array> {
  return Object.fromEntries(Object.entries(files).map(([k, v]) => [k, typeof v === 'string' ? new TextEncoder().encode(v) : v]));
}

/** Read through a function so assertions on one phase do not narrow the next read. */
function phaseOf(s: SidecarStatus): string {
  return s.current.phase;
}

void describe('sidecar phase', () => {
  void it('starts initializing, serves after the first valid load, and alternates serving and reloading', () => {
    const s = new SidecarStatus();
    assert.equal(phaseOf(s), 'initializing');
    s.reloadStarted();
    assert.equal(phaseOf(s), 'initializing', 'retrying the first load is still initializing');
    s.reloadFinished(false);
    assert.equal(phaseOf(s), 'initializing', 'a failed first load does not serve');
    s.reloadFinished(true);
    assert.equal(phaseOf(s), 'serving');
    s.reloadStarted();
    assert.equal(phaseOf(s), 'reloading');
    s.reloadFinished(true);
    assert.equal(phaseOf(s), 'serving');
  });

  void it('drains from any phase, once, and nothing leaves draining', () => {
    const s = new SidecarStatus();
    const deadline = new Date(Date.now() + 1000);
    s.drain(deadline);
    assert.deepEqual(s.current.phase === 'draining' && s.current.deadline, deadline);
    s.reloadStarted();
    s.reloadFinished(true);
    assert.equal(phaseOf(s), 'draining');
    assert.throws(() => s.drain(deadline), InvalidTransition);
  });
});

void describe('readiness', () => {
  let pki: TestPki;
  let withDcs: ServingMaterial;
  let certificateOnly: ServingMaterial;
  before(async () => {
    pki = await makePki();
    withDcs = validateServingMaterial('/v', toFileMap(await credentialFiles(pki, { validitySeconds: 3600 })));
    certificateOnly = validateServingMaterial('/v', toFileMap(await credentialFiles(pki, { algorithms: [], certificateKey: true })));
  });
  const serving = { phase: 'serving', since: new Date() } as const;

  void it('is ready while serving an unexpired delegated credential', () => {
    assert.equal(readiness(serving, withDcs, { keyless: false }, new Date()).ready, true);
    assert.equal(readiness({ phase: 'reloading', since: new Date() }, withDcs, { keyless: false }, new Date()).ready, true);
  });

  void it('is not ready once every delegated credential expired and there is no fallback key', () => {
    const later = new Date(Date.now() + 2 * 3600_000);
    const r = readiness(serving, withDcs, { keyless: false }, later);
    assert.equal(r.ready, false);
    assert.match(r.reason, /expired/);
  });

  void it('is ready with the certificate key or a keyless signer when no credential is left', () => {
    assert.equal(readiness(serving, certificateOnly, { keyless: false }, new Date()).ready, true);
    const later = new Date(Date.now() + 2 * 3600_000);
    assert.equal(readiness(serving, withDcs, { keyless: true }, later).ready, true);
  });

  void it('is not ready while initializing or draining, whatever is loaded', () => {
    assert.equal(readiness({ phase: 'initializing', since: new Date() }, withDcs, { keyless: false }, new Date()).ready, false);
    assert.equal(readiness({ phase: 'draining', since: new Date(), deadline: new Date() }, withDcs, { keyless: false }, new Date()).ready, false);
  });

  void it('refuses a version with nothing to serve (no credential, no key, no keyless)', () => {
    assert.throws(() => validateServingMaterial('/v', toFileMap({ 'tls.crt': pki.leaf.pem })), /nothing to serve/);
    assert.doesNotThrow(() => validateServingMaterial('/v', toFileMap({ 'tls.crt': pki.leaf.pem }), { keylessConfigured: true }));
  });
});
