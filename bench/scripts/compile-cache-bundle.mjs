// A sidecar bundle (P-256 certificate, P-256 DC, ca.crt) in the kubelet's layout, for
// compile-cache-image.sh: node bench/scripts/compile-cache-bundle.mjs DIR CA_FILE (after npm run build).
import { writeFile } from 'node:fs/promises';
import { credentialFiles, makePki } from '../../dist/test/unit/sidecar/fixtures.js';
import { KubeletVolume } from '../../dist/test/unit/sidecar/kubelet-volume.js';

const [dir, caFile] = process.argv.slice(2);
if (!dir || !caFile) throw new Error('usage: compile-cache-bundle.mjs DIR CA_FILE');
const pki = await makePki('ecdsa-p256');
await new KubeletVolume(dir).write(await credentialFiles(pki));
await writeFile(caFile, pki.ca.pem);
console.log(dir);
