// Secrets as metadata only, for the key server's watches: the apiserver sends PartialObjectMetadata
// (name, namespace, resourceVersion, labels, annotations) instead of whole Secrets, so the list and
// every watch event carry no `data` at all. The key server reads the two Secrets a grant needs with
// a GET by name when it builds the grant (cluster-keys.ts); a watch is only a reason to look again.
// Without this every certificate Secret's tls.key in the watched namespaces crossed the wire into
// this process on each list and change, though the informer dropped it on arrival.
//
// How: a client that asks for the metadata form (the Accept header client-go's metadata
// informers send) on every list and watch. Everything else (the cluster, the credentials, the
// pooled connections) is the given client's.
import type { ApiClient } from '../operator/apiserver/client.js';
import { KubeClient } from '../operator/kube.js';

/** The metadata forms of a list and of a single object (one watch event). */
const LIST_AS_METADATA = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1';
const OBJECT_AS_METADATA = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1';

/**
 * A client (sharing `api`'s cluster, credentials and connections) whose lists and watches ask for
 * metadata only. Use it for list/watch sources only: a GET through it would return whole objects.
 */
export function metadataOnlyClient(api: ApiClient): ApiClient {
  return api.accepting({ list: LIST_AS_METADATA, object: OBJECT_AS_METADATA });
}

/** List/watch sources of Secrets without their data (`secretSource` of the returned client). */
export function secretMetadataClient(api: ApiClient): Pick<KubeClient, 'secretSource'> {
  return new KubeClient(metadataOnlyClient(api));
}
