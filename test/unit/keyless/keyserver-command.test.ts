/** `dc-operator keyserver` refuses bad input at start, naming the flag, before it listens. */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeKeylessPki, type KeylessPki } from './pki.js';

const entry = fileURLToPath(new URL('../../../src/cli/dc-operator.js', import.meta.url));

let pki: KeylessPki;
before(() => {
  pki = makeKeylessPki(['p256']);
});
after(() => pki.cleanup());

/** Runs the command with good files, `--ca` and extra flags; it must exit (a start would hang). */
function keyserver(ca: string, ...extra: string[]): { code: number | null; stderr: string } {
  const r = spawnSync(
    process.execPath,
    [entry, 'keyserver', '--keys', pki.keysDir, '--ca', ca, '--cert', join(pki.dir, 'server.crt'), '--key', join(pki.dir, 'server.pem'),
      '--address', '127.0.0.1', '--port', '0', ...extra],
    { encoding: 'utf8', timeout: 20_000 },
  );
  return { code: r.status, stderr: r.stderr };
}

void describe('dc-operator keyserver start-up checks', () => {
  void it('refuses a --ca file that holds no certificate (a private key, an empty file), naming the flag and the file', () => {
    const keyOnly = join(pki.dir, 'ca.pem'); // the CA's private key
    const empty = join(pki.dir, 'empty.crt');
    writeFileSync(empty, '');
    for (const file of [keyOnly, empty]) {
      const r = keyserver(file);
      assert.equal(r.code, 2, r.stderr); // an input error
      assert.match(r.stderr, new RegExp(`--ca ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: no PEM CERTIFICATE found`));
      assert.doesNotMatch(r.stderr, /listening/);
    }
  });

  void it('validates the connection limits and timeouts up front, naming the flag', () => {
    const ca = join(pki.dir, 'ca.crt');
    for (const [flag, value, message] of [
      ['--max-connections', '0', /--max-connections: must be between 1 and/],
      ['--max-connections-per-source', 'many', /--max-connections-per-source: must be a whole number/],
      ['--handshake-timeout', '0s', /--handshake-timeout: must be longer than 0s/],
      ['--idle-timeout', '5 minutes', /--idle-timeout: "5 minutes" is not a duration/],
    ] as const) {
      const r = keyserver(ca, flag, value);
      assert.equal(r.code, 2, `${flag} ${value}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
  });

  void it('--from-cluster takes its keys and TLS Secret from the API: directory flags, signing workers and cluster flags without it are refused, naming the flag', () => {
    const run = (...args: string[]) => spawnSync(process.execPath, [entry, 'keyserver', ...args], { encoding: 'utf8', timeout: 20_000 });
    for (const [args, message] of [
      [['--from-cluster', '--keys', pki.keysDir], /--keys is for a key directory; --from-cluster reads keys and its TLS Secret from the API/],
      [['--from-cluster', '--workers', '2'], /--workers: signing workers are not available with --from-cluster/],
      [['--from-cluster', '--trust-domain', 'Not/A/Domain'], /--trust-domain: "Not\/A\/Domain" is not a trust domain/],
      [['--from-cluster', '--namespace', 'Bad_NS'], /"Bad_NS" is not a namespace name/],
      [['--ca', join(pki.dir, 'ca.crt'), '--cert', 'c', '--key', 'k'], /--keys is required \(or use --from-cluster\)/],
      [['--keys', pki.keysDir, '--ca', 'a', '--cert', 'c', '--key', 'k', '--tls-secret', 'x'], /--tls-secret only applies with --from-cluster/],
    ] as const) {
      const r = run(...args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
  });
});
