/**
 * Issue #13's whole chain, each part its own process against the real apiserver:
 *
 *   `dc-operator controller --keyserver-address`  issues the DCs, the keyless CA, the key server's
 *                                                 serving Secret and each output Secret (the bundle)
 *   `dc-operator keyserver --from-cluster`        serves with that Secret, signs per identity with
 *                                                 keys read from the API
 *   `dc-operator sidecar`                         given only namespace A's output Secret, laid out
 *                                                 as kubelet mounts it (..data), in front of an app
 *
 * curl, openssl s_client (TLS 1.3 and 1.2) and node:tls, none with DC support, get the app's
 * answer through keyless; NSS tstclnt gets the DC; A's identity asking for B's key is refused and
 * logged; the key server stopped and restarted under a loop of NSS handshakes: no DC client
 * fails, non-DC clients get a prompt alert while it is down, and the sidecar recovers on its own.
 */
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CoreV1Api, type KubeConfig, type V1Secret } from '@kubernetes/client-node';
import { KeylessClient } from '../../src/keyless/client.js';
import { KeylessRemoteError } from '../../src/keyless/errors.js';
import { ErrorCode } from '../../src/keyless/protocol.js';
import { computeSki } from '../../src/keyless/ski.js';
import { BUNDLE_KEYS, sidecarIdentityUri } from '../../src/operator/api/serving-bundle.js';
import { createTestNamespace, testKubeConfig, testKubeconfigPath, type TestNamespace } from '../support/cluster.js';
import { freePort, repoRoot } from '../support/control-plane.js';
import { certificateVerifyContent, signAsSidecar } from '../support/sidecar-signing.js';
import { httpGet, killAll, metricSum, nodeTlsGet, run, start, tstclntHandshake, type Proc } from '../interop/support.js';
import { KubeletVolume } from '../unit/sidecar/kubelet-volume.js';
import { applyCrds, createDelegatedCredential, dcctlCertificate, putSecret, secretData, tlsSecret, waitFor, waitForCondition } from './operator-fixtures.js';

const CLI = join(repoRoot, 'dist', 'src', 'cli', 'dc-operator.js');
const APP_ANSWER = 'hello from the app';

type LogLine = Readonly<Record<string, unknown>>;

/** The JSON log lines a process wrote so far. */
function logLines(p: Proc): LogLine[] {
  return p.output().split('\n').filter((l) => l.startsWith('{')).flatMap((l) => {
    try {
      return [JSON.parse(l) as LogLine];
    } catch {
      return [];
    }
  });
}

void describe('operator, key server and sidecar as separate processes: every client served', { timeout: 120_000 }, () => {
  let kc: KubeConfig;
  let core: CoreV1Api;
  let a: TestNamespace;
  let b: TestNamespace;
  let own: TestNamespace;
  let work: string;
  let certA: { crt: string; key: string; ca: string };
  let certB: { crt: string; key: string; ca: string };
  let caFile: string;
  let nssDb: string;
  let bundle: V1Secret;
  let app: HttpServer;
  let keyServerPort: number;
  let controller: Proc;
  let keyServer: Proc;
  let sidecar: Proc;
  let port: number;
  let metricsPort: number;

  const startKeyServer = async (): Promise<Proc> => {
    const probes = await freePort();
    const p = start(process.execPath, [
      CLI, 'keyserver', '--from-cluster', '--kubeconfig', await testKubeconfigPath(), '--namespace', a.name, '--namespace', b.name,
      '--operator-namespace', own.name, '--address', '127.0.0.1', '--port', String(keyServerPort), '--metrics-port', String(probes),
    ]);
    await waitFor('the key server is ready', 30_000, async () => ((await fetch(`http://127.0.0.1:${probes}/readyz`)).status === 200 ? true : undefined));
    return p;
  };
  const curl = async (...extra: string[]): Promise<{ code: number; out: string; ms: number }> => {
    const t0 = Date.now();
    const r = await run('curl', ['-sS', '--max-time', '10', ...extra, '--cacert', caFile, '--resolve', `localhost:${port}:127.0.0.1`, `https://localhost:${port}/`]);
    return { code: r.code, out: r.output, ms: Date.now() - t0 };
  };
  const opensslGet = (version: '-tls1_3' | '-tls1_2'): Promise<string> =>
    run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', caFile, version, '-brief', '-ign_eof'], { input: httpGet() }).then((r) => r.output);
  const tstclnt = async (): Promise<{ code: number; out: string; ms: number }> => {
    const t0 = Date.now();
    const r = await tstclntHandshake(port, nssDb);
    return { code: r.code, out: r.output, ms: Date.now() - t0 };
  };
  const metric = (line: RegExp): Promise<number> => metricSum(metricsPort, line);

  before(async () => {
    kc = await testKubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    await applyCrds(kc);
    [a, b, own] = await Promise.all([createTestNamespace('chain-a'), createTestNamespace('chain-b'), createTestNamespace('chain-op')]);
    work = await mkdtemp(join(tmpdir(), 'dc-fallback-chain-'));
    certA = dcctlCertificate({ dns: 'localhost' });
    certB = dcctlCertificate({ dns: 'localhost' });
    caFile = join(work, 'ca.crt');
    await writeFile(caFile, certA.ca);
    nssDb = join(work, 'nssdb');
    await mkdir(nssDb);
    assert.equal((await run('certutil', ['-N', '--empty-password', '-d', nssDb])).code, 0);
    assert.equal((await run('certutil', ['-A', '-n', 'ca', '-t', 'C,,', '-i', caFile, '-d', nssDb])).code, 0);

    await putSecret(core, tlsSecret(a.name, 'web-tls', certA.crt, certA.key));
    await putSecret(core, tlsSecret(b.name, 'web-tls', certB.crt, certB.key));
    await createDelegatedCredential(kc, a.name, 'web', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-out', algorithms: ['ecdsa_secp256r1_sha256'] });
    await createDelegatedCredential(kc, b.name, 'web', { certificateSecretRef: { name: 'web-tls' }, secretName: 'web-out', algorithms: ['ecdsa_secp256r1_sha256'] });

    keyServerPort = await freePort();
    controller = start(process.execPath, [
      CLI, 'controller', '--kubeconfig', await testKubeconfigPath(), '--namespace', `${a.name},${b.name}`, '--operator-namespace', own.name,
      '--metrics-port', String(await freePort()), '--metrics-address', '127.0.0.1', '--no-leader-election',
      '--keyserver-address', `127.0.0.1:${keyServerPort}`,
    ]);
    // The key server waits for the serving Secret the controller issues for its address.
    keyServer = await startKeyServer();
    await waitForCondition(kc, a.name, 'web', 'Ready', 'True', undefined, 30_000);
    bundle = await waitFor("A's output Secret holds the whole bundle", 30_000, async () => {
      const s = await core.readNamespacedSecret({ namespace: a.name, name: 'web-out' });
      return s.data?.[BUNDLE_KEYS.keylessClientCertificate] ? s : undefined;
    });

    app = createHttpServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(`${APP_ANSWER}\n`));
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    // The sidecar gets the output Secret and nothing else, as kubelet projects it.
    const volume = new KubeletVolume(join(work, 'bundle'));
    await volume.write(Object.fromEntries(Object.keys(bundle.data ?? {}).map((k) => [k, secretData(bundle, k)])));
    sidecar = start(process.execPath, [
      CLI, 'sidecar', '--dc-dir', volume.dir, '--address', '127.0.0.1', '--port', '0', '--metrics-port', '0', '--metrics-address', '127.0.0.1',
      '--upstream', String((app.address() as AddressInfo).port), '--report-interval', '1s', '--keyless-timeout', '1s', '--log-level', 'debug',
    ]);
    const listening = await waitFor('the sidecar listens', 15_000, () => Promise.resolve(logLines(sidecar).find((l) => l['msg'] === 'sidecar listening')));
    port = Number(String(listening['listen']).split(':').pop());
    metricsPort = listening['metricsPort'] as number;
  });

  after(async () => {
    for (const p of [sidecar, keyServer, controller]) if (p) await p.stop();
    killAll();
    await new Promise<void>((r) => (app ? app.close(() => r()) : r()));
    await Promise.all([a?.delete(), b?.delete(), own?.delete()]);
    if (work) await rm(work, { recursive: true, force: true });
  });

  void it('the sidecar holds no certificate key: its bundle names the key server and A\'s identity', () => {
    assert.equal(secretData(bundle, BUNDLE_KEYS.fallback).toString(), 'Keyless');
    assert.equal(secretData(bundle, BUNDLE_KEYS.keylessAddress).toString(), `127.0.0.1:${keyServerPort}`);
    assert.ok(!('tls.key' in (bundle.data ?? {})));
    const keyLine = certA.key.split('\n')[1] ?? 'unreachable';
    for (const k of Object.keys(bundle.data ?? {})) assert.ok(!secretData(bundle, k).toString().includes(keyLine), `no certificate key in ${k}`);
  });

  void it('serves curl, openssl s_client -tls1_3 and node:tls (no DC support) the app through keyless', async () => {
    const c = await curl();
    assert.equal(c.code, 0, c.out);
    assert.match(c.out, new RegExp(APP_ANSWER));
    const o = await opensslGet('-tls1_3');
    assert.match(o, /Protocol version: TLSv1\.3/);
    assert.match(o, /Verification: OK/);
    assert.match(o, new RegExp(APP_ANSWER));
    assert.match(await nodeTlsGet(port, certA.ca), new RegExp(APP_ANSWER));
    assert.equal(await metric(/^dc_sidecar_handshakes_total\{mode="keyless",engine="ours",result="success"\}/), 3);
  });

  void it('serves TLS 1.2 clients (openssl s_client -tls1_2, curl --tls-max 1.2) through keyless', async () => {
    const o = await opensslGet('-tls1_2');
    assert.match(o, /Protocol version: TLSv1\.2/);
    assert.match(o, /Verification: OK/);
    assert.match(o, new RegExp(APP_ANSWER));
    const c = await curl('--tls-max', '1.2', '-v');
    assert.equal(c.code, 0, c.out);
    assert.match(c.out, /TLSv1\.2/);
    assert.match(c.out, new RegExp(APP_ANSWER));
    assert.equal(await metric(/^dc_sidecar_handshakes_total\{mode="keyless",.*result="success"\}/), 5);
  });

  void it('serves NSS tstclnt -B the delegated credential', async () => {
    const t = await tstclnt();
    assert.equal(t.code, 0, t.out);
    assert.match(t.out, /Received a Delegated Credential/);
    assert.equal(await metric(/^dc_sidecar_handshakes_total\{mode="dc",engine="ours",result="success"\}/), 1);
  });

  void it("refuses A's identity signing with B's key, and logs it", async () => {
    const client = new KeylessClient({
      address: secretData(bundle, BUNDLE_KEYS.keylessAddress).toString(), ca: secretData(bundle, BUNDLE_KEYS.keylessCA).toString(),
      cert: secretData(bundle, BUNDLE_KEYS.keylessClientCertificate).toString(), key: secretData(bundle, BUNDLE_KEYS.keylessClientKey).toString(), timeoutMs: 5000,
    });
    const skiB = computeSki(createPrivateKey(certB.key));
    const content = certificateVerifyContent();
    try {
      const refused = await signAsSidecar(client, skiB, content).then(() => undefined, (err: unknown) => err);
      assert.ok(refused instanceof KeylessRemoteError, `refused in-band: ${String(refused)}`);
      assert.equal(refused.code, ErrorCode.keyNotFound);
      // Its own key signs over the same connection.
      await signAsSidecar(client, computeSki(createPrivateKey(certA.key)), content);
    } finally {
      await client.close();
    }
    const idA = sidecarIdentityUri({ trustDomain: 'cluster.local', namespace: a.name, name: 'web' });
    const line = await waitFor('the refusal is logged', 5000, () =>
      Promise.resolve(logLines(keyServer).find((l) => l['msg'] === 'keyserver: signing refused' && l['identity'] === idA)));
    assert.equal(line['result'], 'denied');
    assert.equal(line['ski'], Buffer.from(skiB).toString('hex'));
  });

  void it('the key server stopped and restarted: no DC client fails, non-DC clients get a prompt alert meanwhile, recovery on its own', async (t) => {
    // NSS handshakes back to back for the whole outage, bounded in count.
    // NSS handshakes 50 ms apart for the whole outage; the count bound (about a minute) is far
    // above what the outage takes, and the test checks the loop was still running at the end.
    let stop = false;
    const nss = { ok: 0, slowestMs: 0, failed: [] as string[], coveredTheOutage: false };
    const loop = (async () => {
      for (let i = 0; i < 1000; i++) {
        if (stop) {
          nss.coveredTheOutage = true;
          return;
        }
        const t = await tstclnt();
        nss.slowestMs = Math.max(nss.slowestMs, t.ms);
        if (t.code === 0 && /Received a Delegated Credential/.test(t.out)) nss.ok += 1;
        else nss.failed.push(`#${i} at ${new Date().toISOString()}: exit ${t.code} after ${t.ms} ms:\n${t.out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    try {
      assert.equal(await keyServer.stop(), 0, 'the key server exits 0 on SIGTERM');
      for (let i = 0; i < 2; i++) {
        const c = await curl();
        assert.notEqual(c.code, 0, 'curl must fail without the key server');
        assert.match(c.out, /alert|handshake failure|internal error/i);
        assert.ok(c.ms < 5_000, `refused within the keyless timeout, not hung (${c.ms} ms)`);
      }
      await waitFor('the interval line says the key server is unreachable', 10_000, () =>
        Promise.resolve(logLines(sidecar).find((l) => /^last \d+s: /.test(String(l['msg'])) && /key server unreachable/.test(String(l['msg'])))));
      keyServer = await startKeyServer();
      const deadline = Date.now() + 30_000;
      for (;;) {
        const c = await curl();
        if (c.code === 0 && c.out.includes(APP_ANSWER)) break;
        assert.ok(Date.now() < deadline, `not recovered within 30 s: ${c.out}`);
        await new Promise((r) => setTimeout(r, 300));
      }
    } finally {
      stop = true;
      await loop;
    }
    t.diagnostic(`${nss.ok} NSS handshakes with the DC through the outage and the recovery, the slowest ${nss.slowestMs} ms`);
    const sidecarSaid = logLines(sidecar).filter((l) => l['msg'] === 'handshake failed' && l['mode'] === 'dc').map((l) => JSON.stringify(l));
    assert.deepEqual(nss.failed, [], `${nss.failed.length} NSS handshakes failed; the sidecar's DC handshake failures:\n${sidecarSaid.join('\n')}`);
    assert.ok(nss.coveredTheOutage, `the NSS loop ran until the key server was back (${nss.ok} handshakes)`);
    assert.ok(nss.ok >= 3, `NSS handshakes ran through the outage (${nss.ok})`);
  });
});
