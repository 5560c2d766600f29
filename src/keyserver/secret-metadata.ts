// Secrets as metadata only, for the key server's watches: the apiserver sends PartialObjectMetadata
// (name, namespace, resourceVersion, labels, annotations) instead of whole Secrets, so the list and
// every watch event carry no `data` at all. The key server reads the two Secrets a grant needs with
// a GET by name when it builds the grant (cluster-keys.ts); a watch is only a reason to look again.
// Without this every certificate Secret's tls.key in the watched namespaces crossed the wire into
// this process on each list and change, though the informer dropped it on arrival.
//
// How: a KubeConfig that asks for the metadata form (the Accept header client-go's metadata
// informers send) on every request it authenticates, list and watch alike. Everything else (the
// cluster, the credentials, the pooled agents) is the given KubeConfig's, by prototype.
import type { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from '../operator/kube.js';

/** The metadata forms of a list and of a single object (one watch event). */
const LIST_AS_METADATA = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1';
const OBJECT_AS_METADATA = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1';

type FetchOptions = Parameters<KubeConfig['applyToFetchOptions']>[0];
type RequestContext = Parameters<KubeConfig['applySecurityAuthentication']>[0];

/**
 * A KubeConfig (sharing `kc`'s cluster, credentials and agents) whose requests ask for metadata
 * only. Use it for list/watch sources only: a GET through it would return no data either.
 */
export function metadataOnlyKubeConfig(kc: KubeConfig): KubeConfig {
  const meta = Object.create(kc) as KubeConfig;
  // Generated API calls (the list): authenticated last, so this Accept replaces the JSON default.
  meta.applySecurityAuthentication = async (context: RequestContext): Promise<void> => {
    await kc.applySecurityAuthentication(context);
    context.setHeaderParam('Accept', LIST_AS_METADATA);
  };
  // client-node's Watch builds its request from these options.
  meta.applyToFetchOptions = (opts: FetchOptions) =>
    kc.applyToFetchOptions({ ...opts, headers: { ...(opts.headers as Record<string, string> | undefined), Accept: OBJECT_AS_METADATA } });
  return meta;
}

/** List/watch sources of Secrets without their data (`secretSource` of the returned client). */
export function secretMetadataClient(kc: KubeConfig): Pick<KubeClient, 'secretSource'> {
  return new KubeClient(metadataOnlyKubeConfig(kc));
}
