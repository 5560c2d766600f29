// Rotation for real, on the real node: a DelegatedCredential with validity 3m and renewBefore
// 150s is re-issued every 30 seconds. Each new credential reaches the running sidecar through kubelet's
// Secret volume (kubelet syncFrequency: 10s, scripts/e2e/node-inner.sh) while NSS tstclnt
// handshakes run the whole time: 0 failures, every one with a DC.
// Then the same across disruption: the leading controller pod is deleted and kube-apiserver is
// restarted just before a renewal; the DC stays valid, every version of the output Secret read
// meanwhile is whole (the old or the new bundle), and the renewal still happens and is served.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { validateServingMaterial } from '../../src/sidecar/material.js';
import { assertInNodeNetwork, kubectl, restartApiserver, run, waitFor, e2e } from './support/node.js';
import {
  annotatedDeploymentYaml, createCertificateSecret, createNamespace, dcStatus, delegatedCredentialYaml, ensureOperator, makePki, measure,
  OPERATOR_NS, servedCredentialExpiry, tstclnt, waitForOperatorReady, waitForReadyPod, type Handshake, type PodInfo, type Pki,
} from './support/operator.js';
import { join } from 'node:path';

let ns = '';
let pki: Pki;
let pod: PodInfo;

/** Sequential handshakes until stopped (bounded: 20 minutes, 5000 handshakes). */
class HandshakeLoop {
  readonly results: Handshake[] = [];
  private stopped = false;
  private readonly done: Promise<void>;
  constructor(ip: string) {
    const deadline = Date.now() + 20 * 60_000;
    this.done = (async () => {
      while (!this.stopped && Date.now() < deadline && this.results.length < 5000) {
        this.results.push(await tstclnt(ip, pki));
        await sleep(150);
      }
    })();
  }
  async stop(): Promise<Handshake[]> {
    this.stopped = true;
    await this.done;
    return this.results;
  }
}

function assertAllDelegated(results: Handshake[], what: string): void {
  const failed = results.filter((h) => !h.ok);
  const plain = results.filter((h) => h.ok && !h.delegated);
  assert.ok(results.length >= 20, `only ${results.length} handshakes ${what}`);
  assert.equal(failed.length, 0, `${failed.length}/${results.length} handshakes failed ${what}; first:\n${failed[0]?.output}`);
  assert.equal(plain.length, 0, `${plain.length}/${results.length} handshakes without a DC ${what}`);
}

/** Waits for a new issuance after `previous`, then for the sidecar to serve it; returns ms from issuance to serving. */
async function nextRotationServed(previous: string | undefined, timeoutMs: number): Promise<{ issued: string; notAfter: string; servedAfterMs: number }> {
  const s = await waitFor(`a new issuance after ${previous}`, timeoutMs, async () => {
    const st = await dcStatus(ns, 'rot-dc');
    return st.lastIssuedTime && st.lastIssuedTime !== previous && st.notAfter ? st : undefined;
  }, 500);
  const notAfter = Date.parse(s.notAfter!);
  await waitFor(`the sidecar to serve the DC valid until ${s.notAfter}`, 60_000, async () => {
    const served = await servedCredentialExpiry(pod.ip, pki);
    return served && Date.parse(served) === notAfter ? true : undefined;
  }, 250);
  return { issued: s.lastIssuedTime!, notAfter: s.notAfter!, servedAfterMs: Date.now() - Date.parse(s.lastIssuedTime!) };
}

before(async () => {
  assertInNodeNetwork();
  await ensureOperator();
  ns = await createNamespace('e2e-rotation', true);
  pki = makePki();
  await createCertificateSecret(ns, pki);
  await kubectl(['apply', '-f', '-'], { input: delegatedCredentialYaml(ns, 'rot-dc', { validity: '3m', renewBefore: '150s' }) });
  await kubectl(['apply', '-f', '-'], { input: annotatedDeploymentYaml(ns, 'rot', 'rot-dc') });
  pod = await waitForReadyPod(ns, 'rot');
});
after(async () => { if (ns) await kubectl(['delete', 'namespace', ns, '--wait=false']); });

let lastIssued: string | undefined;

test('a renewed DC reaches the running sidecar through kubelet, with 0 failed handshakes, each with a DC', async () => {
  const start = await dcStatus(ns, 'rot-dc');
  assert.ok(start.lastIssuedTime, 'the DC was never issued');
  const loop = new HandshakeLoop(pod.ip);
  try {
    const r = await nextRotationServed(start.lastIssuedTime, 150_000);
    measure('DC rotation (status.lastIssuedTime) -> the sidecar serves the new DC (kubelet syncFrequency 10s)', r.servedAfterMs, 'ms');
    lastIssued = r.issued;
    await sleep(3000);
  } finally {
    assertAllDelegated(await loop.stop(), 'during the rotation');
  }
});

test('deleting the leading controller pod and restarting kube-apiserver before a renewal lose nothing', async () => {
  assert.ok(lastIssued, 'needs the rotation above');
  const loop = new HandshakeLoop(pod.ip);
  const versions = new Set<string>();
  const problems: string[] = [];
  let polling = true;
  // Every readable version of the output Secret must be whole, and the DC in it still valid.
  const poller = (async () => {
    const deadline = Date.now() + 10 * 60_000;
    while (polling && Date.now() < deadline) {
      const r = await run(join(e2e.bin, 'kubectl'), ['get', 'secret', 'rot-dc', '-n', ns, '-o', 'jsonpath={.data}'], { timeoutMs: 10_000 });
      if (r.code === 0 && r.stdout) {
        const data = JSON.parse(r.stdout) as Record<string, string>;
        const files = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, new Uint8Array(Buffer.from(v, 'base64'))]));
        try {
          const m = validateServingMaterial('secret rot-dc', files);
          if (m.credentials.entries.length === 0) problems.push('a version without a credential');
          versions.add(m.fingerprint);
        } catch (err) {
          problems.push(err instanceof Error ? err.message : String(err));
        }
      }
      await sleep(1000);
    }
  })();
  try {
    const st = await dcStatus(ns, 'rot-dc');
    const renewal = Date.parse(st.renewalTime ?? '');
    assert.ok(Number.isFinite(renewal), `no renewalTime in ${JSON.stringify(st)}`);
    await sleep(Math.max(0, renewal - Date.now() - 12_000));
    const { leader } = await waitForOperatorReady();
    await kubectl(['delete', 'pod', leader, '-n', OPERATOR_NS, '--wait=false']);
    await restartApiserver();
    const r = await nextRotationServed(lastIssued, 180_000);
    measure('DC rotation after leader pod deletion + apiserver restart -> served', r.servedAfterMs, 'ms');
    const after = await dcStatus(ns, 'rot-dc');
    assert.ok(Date.parse(after.notAfter ?? '') > Date.now(), `the DC expired: ${JSON.stringify(after)}`);
    await sleep(3000);
  } finally {
    polling = false;
    await poller;
    assertAllDelegated(await loop.stop(), 'across the controller deletion and the apiserver restart');
  }
  assert.deepEqual(problems, [], 'a partial or invalid output Secret was read');
  assert.ok(versions.size >= 2, `saw ${versions.size} version(s) of the output Secret; expected the old and the new`);
});
