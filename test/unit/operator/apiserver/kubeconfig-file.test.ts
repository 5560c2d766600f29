// Which kubeconfigs our own client reads and which it hands to client-node, and how several
// KUBECONFIG files merge (kubectl: the first file to set a value wins).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decideKubeconfig, KubeconfigInvalid, type KubeconfigFile } from '../../../../src/operator/apiserver/kubeconfig-file.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

function config(user: Record<string, unknown>, cluster: Record<string, unknown> = { server: 'https://10.0.0.1:6443' }, extra: Record<string, unknown> = {}): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster }],
    users: [{ name: 'u', user }],
    contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
    'current-context': 'ctx',
    ...extra,
  };
}
const one = (c: unknown, path = '/home/ada/.kube/config'): KubeconfigFile[] => [{ path, config: c }];

void describe('decideKubeconfig: our own client', () => {
  void it('a client certificate and key inline, the CA inline', () => {
    const d = decideKubeconfig(one(config({ 'client-certificate-data': b64('CERT'), 'client-key-data': b64('KEY') }, { server: 'https://a:6443', 'certificate-authority-data': b64('CA') })));
    assert.equal(d.kind, 'own');
    if (d.kind !== 'own') return;
    assert.deepEqual(d.config, { context: 'ctx', server: 'https://a:6443', ca: { data: Buffer.from('CA') }, cert: { data: Buffer.from('CERT') }, key: { data: Buffer.from('KEY') }, insecureSkipTlsVerify: false });
  });

  void it('files relative to the kubeconfig that names them; a token file; tls-server-name; insecure-skip-tls-verify; as', () => {
    const d = decideKubeconfig(
      one(
        config({ 'client-certificate': 'certs/op.crt', 'client-key': '/abs/op.key', tokenFile: 'tok', as: 'someone' }, { server: 'https://a', 'certificate-authority': 'ca.crt', 'insecure-skip-tls-verify': true, 'tls-server-name': 'kubernetes' }),
        '/etc/kube/config',
      ),
    );
    assert.ok(d.kind === 'own');
    assert.deepEqual(d.config, {
      context: 'ctx',
      server: 'https://a',
      ca: { file: '/etc/kube/ca.crt' },
      cert: { file: '/etc/kube/certs/op.crt' },
      key: { file: '/abs/op.key' },
      insecureSkipTlsVerify: true,
      tlsServerName: 'kubernetes',
      tokenFile: '/etc/kube/tok',
      impersonate: 'someone',
    });
  });

  void it('a bearer token; the nulls client-node writes for unset fields are unset', () => {
    const d = decideKubeconfig(one(config({ token: 'abc', exec: null, 'auth-provider': null, username: null, password: null, 'client-certificate-data': null }, { server: 'https://a', 'proxy-url': null })));
    assert.ok(d.kind === 'own');
    assert.equal(d.config.token, 'abc');
    assert.equal(d.config.cert, undefined);
  });

  void it('several files: current-context from the first that sets it, each name from the first that defines it', () => {
    const first: KubeconfigFile = { path: '/a/config', config: { users: [{ name: 'u', user: { token: 'first' } }] } };
    const second: KubeconfigFile = {
      path: '/b/config',
      config: {
        'current-context': 'ctx',
        contexts: [{ name: 'ctx', context: { cluster: 'c', user: 'u' } }],
        clusters: [{ name: 'c', cluster: { server: 'https://b', 'certificate-authority': 'ca.crt' } }],
        users: [{ name: 'u', user: { token: 'second' } }],
      },
    };
    const third: KubeconfigFile = { path: '/c/config', config: { 'current-context': 'other', clusters: [{ name: 'c', cluster: { server: 'https://c' } }] } };
    const d = decideKubeconfig([first, second, third]);
    assert.ok(d.kind === 'own');
    assert.equal(d.config.context, 'ctx');
    assert.equal(d.config.server, 'https://b');
    assert.deepEqual(d.config.ca, { file: '/b/ca.crt' }, 'relative to the file that defined the cluster');
    assert.equal(d.config.token, 'first');
  });
});

void describe('decideKubeconfig: client-node for what we do not implement', () => {
  const table: { name: string; user?: Record<string, unknown>; cluster?: Record<string, unknown>; needs: string[] }[] = [
    { name: 'an exec plugin', user: { exec: { command: 'aws', apiVersion: 'client.authentication.k8s.io/v1' } }, needs: ['an exec credential plugin (users[].user.exec)'] },
    { name: 'an auth provider', user: { 'auth-provider': { name: 'oidc' } }, needs: ['an auth provider (users[].user.auth-provider)'] },
    { name: 'basic authentication', user: { username: 'ada', password: 'x' }, needs: ['basic authentication (users[].user.username)', 'basic authentication (users[].user.password)'] },
    { name: 'a proxy', user: { token: 't' }, cluster: { server: 'https://a', 'proxy-url': 'http://proxy:3128' }, needs: ['a proxy (clusters[].cluster.proxy-url)'] },
  ];
  for (const c of table) {
    void it(c.name, () => {
      assert.deepEqual(decideKubeconfig(one(config(c.user ?? {}, c.cluster))), { kind: 'client-node', needs: c.needs });
    });
  }
});

void describe('decideKubeconfig: what is wrong, said', () => {
  const table: { name: string; config: unknown; message: RegExp }[] = [
    { name: 'no current-context', config: config({}, undefined, { 'current-context': '' }), message: /no current-context; set one/ },
    { name: 'a current-context not defined', config: config({}, undefined, { 'current-context': 'nope' }), message: /current-context "nope" is not among its contexts/ },
    { name: 'a cluster without a server', config: config({}, { 'certificate-authority-data': b64('x') }), message: /cluster "c" has no server/ },
    { name: 'a certificate without a key', config: config({ 'client-certificate-data': b64('C') }), message: /client certificate without a key/ },
    { name: 'not a kubeconfig at all', config: 'hello', message: /no current-context/ },
  ];
  for (const c of table) {
    void it(c.name, () => {
      assert.throws(() => decideKubeconfig(one(c.config)), (err: unknown) => err instanceof KubeconfigInvalid && c.message.test(err.message));
    });
  }
});
