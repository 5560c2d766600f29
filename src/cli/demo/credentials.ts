// Waiting for a DelegatedCredential to be issued, the same way in every mode of the demo.
import type { CustomObjectsApi } from '@kubernetes/client-node';
import type { DelegatedCredentialStatus } from '../../operator/api/v1alpha1.js';
import { DC_GROUP, DC_PLURAL, DC_VERSION } from '../../webhook/config.js';
import { waitFor, type Child } from './runtime.js';

/** Polls until the DelegatedCredential is Ready; fails at once on Ready=False for any reason but Issuing. */
export function waitForDelegatedCredentialReady(custom: CustomObjectsApi, namespace: string, name: string, timeoutMs: number, child?: Child): Promise<DelegatedCredentialStatus> {
  return waitFor(`DelegatedCredential ${name} Ready`, timeoutMs, async () => {
    const dc = (await custom.getNamespacedCustomObject({ group: DC_GROUP, version: DC_VERSION, namespace, plural: DC_PLURAL, name })) as { status?: DelegatedCredentialStatus };
    const ready = dc.status?.conditions?.find((c) => c.type === 'Ready');
    if (ready?.status === 'False' && ready.reason !== 'Issuing') throw new Error(`Ready=False ${ready.reason}: ${ready.message}`);
    return ready?.status === 'True' ? dc.status : undefined;
  }, child);
}
