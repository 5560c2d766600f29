import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { admit, type AdmissionDeps, type DelegatedCredentialRef } from '../../../src/webhook/admission.js';
import type { AdmissionRequest, AdmissionReview } from '../../../src/webhook/admission-types.js';
import { parseAdmissionReview, BadAdmissionReview } from '../../../src/webhook/admission-types.js';
import { DEFAULT_SIDECAR_CONFIG, SIDECAR_CONTAINER_NAME, CREDENTIALS_VOLUME_NAME, CREDENTIALS_MOUNT_PATH, LABEL_SIDECAR, LABEL_SIDECAR_VALUE } from '../../../src/webhook/config.js';
import { applyPatch, type JsonValue, type PatchOperation } from '../../../src/webhook/json-patch.js';
import type { SidecarMode } from '../../../src/webhook/server-version.js';

function pod(annotations?: Record<string, string>, extra: Partial<V1Pod['spec']> = {}): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'web', ...(annotations ? { annotations } : {}) },
    spec: { containers: [{ name: 'app', image: 'nginx', ports: [{ containerPort: 8080 }] }], ...extra },
  };
}

function request(object: V1Pod, overrides: Partial<AdmissionRequest> = {}): AdmissionRequest {
  return {
    uid: 'uid-1',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    namespace: 'shop',
    operation: 'CREATE',
    object: object as unknown as JsonValue,
    ...overrides,
  };
}

const credentials = new Map<string, DelegatedCredentialRef>([['shop/web-dc', { secretName: 'web-dc-credentials' }]]);
function deps(mode: SidecarMode = 'native', lookups: string[] = []): AdmissionDeps {
  return {
    config: { sidecar: DEFAULT_SIDECAR_CONFIG, excludedNamespaces: ['kube-system', 'dc-operator-system'] },
    sidecarMode: mode,
    lookupDelegatedCredential: (ns, name) => {
      lookups.push(`${ns}/${name}`);
      return Promise.resolve(credentials.get(`${ns}/${name}`));
    },
  };
}

function patchOf(review: AdmissionReview): PatchOperation[] {
  const b64 = review.response?.patch;
  return b64 === undefined ? [] : (JSON.parse(Buffer.from(b64, 'base64').toString('utf8')) as PatchOperation[]);
}

function patched(original: V1Pod, review: AdmissionReview): V1Pod {
  return applyPatch(original as unknown as JsonValue, patchOf(review)) as unknown as V1Pod;
}

const optIn = { 'dc-operator.io/inject': 'web-dc' };

void describe('skip predicates leave a pod unchanged', () => {
  void test('a pod without the inject annotation is allowed with no patch and no lookup', async () => {
    const lookups: string[] = [];
    const out = await admit(request(pod()), deps('native', lookups));
    assert.equal(out.result, 'skipped');
    assert.equal(out.reason, 'NotOptedIn');
    assert.deepEqual(out.review.response, { uid: 'uid-1', allowed: true });
    assert.deepEqual(lookups, []);
  });

  void test('an inject annotation of "false" or "disabled" (as Istio\'s) opts out: allowed unchanged, no lookup', async () => {
    for (const value of ['false', 'disabled', 'False', ' DISABLED ']) {
      const lookups: string[] = [];
      const out = await admit(request(pod({ 'dc-operator.io/inject': value })), deps('native', lookups));
      assert.equal(out.result, 'skipped', value);
      assert.equal(out.reason, 'OptedOut', value);
      assert.deepEqual(out.review.response, { uid: 'uid-1', allowed: true }, value);
      assert.deepEqual(lookups, [], value);
    }
    // Any other value is still a DelegatedCredential's name.
    const named = await admit(request(pod({ 'dc-operator.io/inject': 'falsey' })), deps());
    assert.notEqual(named.result, 'skipped');
  });

  void test('an update of a pod is not a creation and is allowed unchanged', async () => {
    const out = await admit(request(pod(optIn), { operation: 'UPDATE' }), deps());
    assert.equal(out.reason, 'NotPodCreation');
    assert.equal(out.review.response?.patch, undefined);
  });

  void test('a pod subresource (binding, ephemeralcontainers) is not a pod creation', async () => {
    const out = await admit(request(pod(optIn), { subResource: 'binding' }), deps());
    assert.equal(out.reason, 'NotPodCreation');
  });

  void test('an annotated pod in an excluded namespace is allowed unchanged', async () => {
    const out = await admit(request(pod(optIn), { namespace: 'kube-system' }), deps());
    assert.equal(out.reason, 'ExcludedNamespace');
    assert.equal(out.review.response?.allowed, true);
    assert.equal(out.review.response?.patch, undefined);
  });

  void test('a pod with the injected marker is allowed unchanged', async () => {
    const out = await admit(request(pod({ ...optIn, 'dc-operator.io/injected': 'true' })), deps());
    assert.equal(out.reason, 'AlreadyInjected');
    assert.equal(out.review.response?.patch, undefined);
  });

  void test('a pod that already has the sidecar container (marker removed) is allowed unchanged', async () => {
    const p = pod(optIn, { initContainers: [{ name: SIDECAR_CONTAINER_NAME, image: 'x' }] });
    const out = await admit(request(p), deps());
    assert.equal(out.reason, 'AlreadyInjected');
    assert.equal(out.review.response?.patch, undefined);
  });
});

void describe('annotation validation denies with a message that says what to fix', () => {
  const cases: Array<[string, Record<string, string>, RegExp]> = [
    ['an empty inject annotation', { 'dc-operator.io/inject': '' }, /annotation dc-operator\.io\/inject is empty: set it to the name of a DelegatedCredential/],
    ['an inject annotation that is not a resource name', { 'dc-operator.io/inject': 'Web_DC' }, /"Web_DC" is not a valid resource name/],
    ['a port that is not a number', { ...optIn, 'dc-operator.io/port': 'https' }, /dc-operator\.io\/port: "https" is not a port number \(an integer from 1 to 65535\)/],
    ['a port out of range', { ...optIn, 'dc-operator.io/port': '70000' }, /dc-operator\.io\/port: 70000 is out of range/],
    ['an upstream port of zero', { ...optIn, 'dc-operator.io/upstream-port': '0' }, /upstream-port: 0 is out of range/],
    ['the same TLS and upstream port', { ...optIn, 'dc-operator.io/port': '9000', 'dc-operator.io/upstream-port': '9000' }, /are both 9000: the sidecar's TLS port and the app's plaintext port must differ/],
    ['a metrics port equal to the TLS port', { ...optIn, 'dc-operator.io/metrics-port': '8443' }, /metrics port 8443 collides with dc-operator\.io\/port/],
    ['a TLS port an app container already declares', { ...optIn, 'dc-operator.io/port': '8080', 'dc-operator.io/upstream-port': '8081' }, /port 8080 \(dc-operator\.io\/port\) is already declared by container app/],
  ];
  for (const [what, annotations, message] of cases) {
    void test(`${what} is refused`, async () => {
      const out = await admit(request(pod(annotations)), deps());
      assert.equal(out.result, 'denied');
      assert.equal(out.review.response?.allowed, false);
      assert.equal(out.review.response?.status?.code, 400);
      assert.match(out.review.response?.status?.message ?? '', message);
    });
  }

  void test('a pod naming a DelegatedCredential that does not exist is refused with the namespace and name', async () => {
    const out = await admit(request(pod({ 'dc-operator.io/inject': 'missing' })), deps());
    assert.equal(out.review.response?.allowed, false);
    assert.equal(
      out.review.response?.status?.message,
      'DelegatedCredential shop/missing not found: create it or fix the dc-operator.io/inject annotation',
    );
  });

  void test('a DelegatedCredential without spec.secretName is refused', async () => {
    const d = deps();
    d.lookupDelegatedCredential = () => Promise.resolve({});
    const out = await admit(request(pod(optIn)), d);
    assert.match(out.review.response?.status?.message ?? '', /shop\/web-dc has no spec\.secretName/);
  });

  void test('a failed lookup is refused with code 500 and the cause, not treated as "not found"', async () => {
    const d = deps();
    d.lookupDelegatedCredential = () => Promise.reject(new Error('connection refused'));
    const out = await admit(request(pod(optIn)), d);
    assert.equal(out.result, 'error');
    assert.equal(out.review.response?.status?.code, 500);
    assert.match(out.review.response?.status?.message ?? '', /could not look up DelegatedCredential shop\/web-dc: connection refused/);
  });

  void test('a hostNetwork pod that asks for the sidecar is refused, saying why and what to change; one that does not ask passes', async () => {
    const lookups: string[] = [];
    const out = await admit(request(pod(optIn, { hostNetwork: true })), deps('native', lookups));
    assert.equal(out.result, 'denied');
    assert.equal(out.reason, 'HostNetworkPod');
    assert.equal(out.review.response?.allowed, false);
    assert.match(out.review.response?.status?.message ?? '', /uses hostNetwork.*the node's own ports.*set spec\.hostNetwork to false or remove the dc-operator\.io\/inject annotation/);
    assert.deepEqual(lookups, [], 'decided before any lookup');
    const plain = await admit(request(pod(undefined, { hostNetwork: true })), deps());
    assert.equal(plain.result, 'skipped');
    assert.equal(plain.review.response?.allowed, true);
  });

  void test('a privileged TLS port is allowed with a warning', async () => {
    const out = await admit(request(pod({ ...optIn, 'dc-operator.io/port': '443' })), deps());
    assert.equal(out.result, 'injected');
    assert.match(out.review.response?.warnings?.[0] ?? '', /443 is a privileged port/);
  });
});

void describe('injection', () => {
  void test('on Kubernetes >= 1.29 the sidecar is a native sidecar: an init container with restartPolicy Always and a startup probe', async () => {
    const original = pod(optIn);
    const out = await admit(request(original), deps('native'));
    assert.equal(out.result, 'injected');
    const result = patched(original, out.review);
    const sidecar = result.spec?.initContainers?.find((c) => c.name === SIDECAR_CONTAINER_NAME);
    assert.ok(sidecar, 'sidecar in initContainers');
    assert.equal(sidecar.restartPolicy, 'Always');
    assert.deepEqual(sidecar.startupProbe?.httpGet, { path: '/readyz', port: 'dc-metrics', scheme: 'HTTP' });
    assert.deepEqual(sidecar.readinessProbe?.httpGet?.path, '/readyz');
    assert.deepEqual(result.spec?.containers.map((c) => c.name), ['app']);
  });

  void test('before 1.29 the sidecar is an ordinary container appended after the app', async () => {
    const original = pod(optIn);
    const out = await admit(request(original), deps('container'));
    const result = patched(original, out.review);
    assert.deepEqual(result.spec?.containers.map((c) => c.name), ['app', SIDECAR_CONTAINER_NAME]);
    assert.equal(result.spec?.initContainers, undefined);
    assert.equal(result.spec?.containers[1]?.restartPolicy, undefined);
    assert.ok(result.spec?.containers[1]?.startupProbe);
  });

  void test('the sidecar runs the terminator with the annotated ports and mounts the DC Secret read-only', async () => {
    const original = pod({ ...optIn, 'dc-operator.io/port': '9443', 'dc-operator.io/upstream-port': '8080' });
    const out = await admit(request(original), deps('native'));
    const result = patched(original, out.review);
    const sidecar = result.spec?.initContainers?.[0];
    assert.deepEqual(sidecar?.command, ['dc-operator']);
    assert.deepEqual(sidecar?.args, [
      'sidecar', '--dc-dir', CREDENTIALS_MOUNT_PATH, '--port', '9443', '--upstream', '127.0.0.1:8080', '--metrics-port', '15300',
      // the connection cap that fits the default 128Mi limit (test/unit/webhook/sidecar-memory.test.ts)
      '--max-connections', '1024', '--max-connections-per-source', '256',
    ]);
    assert.deepEqual(sidecar?.ports, [
      { name: 'dc-tls', containerPort: 9443, protocol: 'TCP' },
      { name: 'dc-metrics', containerPort: 15300, protocol: 'TCP' },
    ]);
    assert.deepEqual(sidecar?.volumeMounts, [{ name: CREDENTIALS_VOLUME_NAME, mountPath: CREDENTIALS_MOUNT_PATH, readOnly: true }]);
    assert.deepEqual(result.spec?.volumes, [{ name: CREDENTIALS_VOLUME_NAME, secret: { secretName: 'web-dc-credentials', defaultMode: 0o444 } }]);
    assert.equal(sidecar?.image, DEFAULT_SIDECAR_CONFIG.image);
    assert.deepEqual(sidecar?.resources, DEFAULT_SIDECAR_CONFIG.resources);
  });

  void test('the sidecar is non-root with a read-only root filesystem, no privilege escalation, no capabilities and RuntimeDefault seccomp', async () => {
    const original = pod(optIn);
    const result = patched(original, (await admit(request(original), deps())).review);
    assert.deepEqual(result.spec?.initContainers?.[0]?.securityContext, {
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
  });

  void test('the pod is marked injected and the default ports are 8443 (TLS) and 8080 (upstream)', async () => {
    const original = pod(optIn);
    const out = await admit(request(original), deps());
    const result = patched(original, out.review);
    assert.equal(result.metadata?.annotations?.['dc-operator.io/injected'], 'true');
    assert.equal(result.metadata?.annotations?.['dc-operator.io/injected-secret'], 'web-dc-credentials');
    const args = result.spec?.initContainers?.[0]?.args ?? [];
    assert.equal(args[args.indexOf('--port') + 1], '8443');
    assert.ok(result.spec?.initContainers?.[0]?.args?.includes('127.0.0.1:8080'));
  });

  void test('the patch only adds: it touches nothing the pod author wrote', async () => {
    const original = pod(optIn, { initContainers: [{ name: 'migrate', image: 'm' }], volumes: [{ name: 'data', emptyDir: {} }] });
    const ops = patchOf((await admit(request(original), deps())).review);
    assert.deepEqual(ops.map((o) => `${o.op} ${o.path}`), [
      'add /metadata/annotations/dc-operator.io~1injected',
      'add /metadata/annotations/dc-operator.io~1injected-secret',
      'add /metadata/labels',
      'add /spec/initContainers/1',
      'add /spec/volumes/1',
    ]);
  });

  void test('an injected pod is labelled dc-operator.io/sidecar: injected (what the key server NetworkPolicy admits), next to its own labels', async () => {
    const original = pod(optIn);
    original.metadata!.labels = { app: 'web' };
    const result = patched(original, (await admit(request(original), deps('native'))).review);
    assert.deepEqual(result.metadata?.labels, { app: 'web', [LABEL_SIDECAR]: LABEL_SIDECAR_VALUE });
    assert.equal(LABEL_SIDECAR, 'dc-operator.io/sidecar');
    assert.equal(LABEL_SIDECAR_VALUE, 'injected');
  });

  void test('the serving bundle is the one volume: no other volume, mount or environment variable is added for keyless', async () => {
    const original = pod(optIn);
    const result = patched(original, (await admit(request(original), deps('native'))).review);
    const sidecar = result.spec?.initContainers?.find((c) => c.name === SIDECAR_CONTAINER_NAME);
    assert.deepEqual(result.spec?.volumes?.map((v) => v.name), [CREDENTIALS_VOLUME_NAME]);
    assert.deepEqual(sidecar?.volumeMounts?.map((m) => m.mountPath), [CREDENTIALS_MOUNT_PATH]);
    assert.equal(sidecar?.env, undefined);
    assert.ok(!sidecar?.args?.some((a) => a.startsWith('--keyless')), 'keyless comes from the bundle, not from flags');
    assert.equal(sidecar?.args?.[sidecar.args.indexOf('--dc-dir') + 1], CREDENTIALS_MOUNT_PATH);
  });

  void test('the DelegatedCredential is looked up in the pod namespace from the request', async () => {
    const lookups: string[] = [];
    await admit(request(pod(optIn)), deps('native', lookups));
    assert.deepEqual(lookups, ['shop/web-dc']);
  });

  for (const mode of ['native', 'container'] as const) {
    void test(`re-invoking the webhook on the injected pod (${mode}) adds nothing`, async () => {
      const original = pod(optIn);
      const first = patched(original, (await admit(request(original), deps(mode))).review);
      const again = await admit(request(first), deps(mode));
      assert.equal(again.result, 'skipped');
      assert.equal(again.review.response?.allowed, true);
      assert.equal(again.review.response?.patch, undefined);
    });
  }
});

void describe('AdmissionReview parsing', () => {
  void test('a body that is not an AdmissionReview v1 is rejected with the field that is wrong', () => {
    assert.throws(() => parseAdmissionReview([]), /not a JSON object/);
    assert.throws(() => parseAdmissionReview({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview' }), /expected apiVersion admission\.k8s\.io\/v1/);
    assert.throws(() => parseAdmissionReview({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }), /request is missing/);
    assert.throws(
      () => parseAdmissionReview({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: '' } }),
      BadAdmissionReview,
    );
  });
});

void test('configuration fields left undefined never reach the patch', async () => {
  const d = deps();
  d.config = { ...d.config, sidecar: { ...DEFAULT_SIDECAR_CONFIG, imagePullPolicy: undefined, resources: { requests: { cpu: '5m', memory: undefined } } } };
  const original = pod(optIn);
  const out = await admit(request(original), d);
  assert.equal(out.result, 'injected');
  const sidecar = patched(original, out.review).spec?.initContainers?.[0];
  assert.deepEqual(sidecar?.resources, { requests: { cpu: '5m' } });
  assert.equal('imagePullPolicy' in (sidecar ?? {}), false);
});
