// API budget: issuing costs a handful of requests per DelegatedCredential, and an idle operator
// makes none besides its open watches (counted from dc_operator_api_requests_total).
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { ControllerHandle } from '../../src/operator/main.js';
import type { TestNamespace } from '../support/cluster.js';
import { createDelegatedCredential, dcctlCertificate, getDelegatedCredential, putSecret, tlsSecret, waitFor, namespacedControllerHooks } from './operator-fixtures.js';

const COUNT = 20;
let kc: KubeConfig;
let core: CoreV1Api;
let ns: TestNamespace;
let controller: ControllerHandle;

namespacedControllerHooks('idle', (c) => ({ kc, core, ns, controller } = c));

async function requests(): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${controller.port}/metrics`)).text();
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^dc_operator_api_requests_total\{verb="([^"]+)",resource="([^"]+)"\} (\d+)$/gm)) {
    out.set(`${m[1]} ${m[2]}`, Number(m[3]));
  }
  return out;
}

function diff(a: Map<string, number>, b: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of b) if (v !== (a.get(k) ?? 0)) out[k] = v - (a.get(k) ?? 0);
  return out;
}

void it(`issues ${COUNT} DelegatedCredentials with few requests each, then makes none while idle`, async () => {
  const cert = dcctlCertificate();
  await putSecret(core, tlsSecret(ns.name, 'tls', cert.crt, cert.key));
  await waitFor('the controller is ready', 10_000, async () => ((await fetch(`http://127.0.0.1:${controller.port}/readyz`)).status === 200 ? true : undefined));
  const start = await requests();
  for (let i = 0; i < COUNT; i++) {
    await createDelegatedCredential(kc, ns.name, `dc-${i}`, { certificateSecretRef: { name: 'tls' }, secretName: `dc-${i}-out` });
  }
  await waitFor(`${COUNT} Ready`, 60_000, async () => {
    for (let i = 0; i < COUNT; i++) {
      const dc = await getDelegatedCredential(kc, ns.name, `dc-${i}`);
      if (dc.status?.conditions?.find((c) => c.type === 'Ready')?.status !== 'True') return undefined;
    }
    return true;
  }, 500);
  await sleep(1000); // let the watch events of our own writes arrive
  const issued = await requests();
  const during = diff(start, issued);
  const perObject = Object.entries(during).filter(([k]) => !k.startsWith('watch') && !k.startsWith('list')).reduce((n, [, v]) => n + v, 0) / COUNT;
  process.stderr.write(`requests while issuing ${COUNT}: ${JSON.stringify(during)} (${perObject.toFixed(2)} per object)\n`);
  // create Secret + status update + Issued event = 3 per object; the certificate key is read once
  // per burst (src/operator/signing-keys.ts), again only if the burst outlasts its idle time.
  assert.ok(perObject <= 3.2, `${perObject} requests per object`);
  assert.ok((during['get secrets'] ?? 0) <= 3, `the certificate key read ${during['get secrets']} times for ${COUNT} issuances`);
  assert.equal(during['update delegatedcredentials/status'], COUNT, 'exactly one status write per object');

  await sleep(8000);
  const idle = diff(issued, await requests());
  process.stderr.write(`requests while idle for 8 s: ${JSON.stringify(idle)}\n`);
  assert.deepEqual(idle, {}, 'no requests while idle');
});
