// What the informer caches keep of the objects they list and watch: every DelegatedCredential
// and every output Secret stays in memory for the operator's lifetime, so their form decides the
// operator's RSS at scale (issue 19: 10,000 objects).

/**
 * What the caches keep of our own kinds and of output Secrets: the object without
 * metadata.managedFields. Nothing here reads them, and they are most of a small object's heap
 * (dozens of nested objects per DelegatedCredential for the field paths of its status conditions).
 * Writes built from a cached object then carry no managedFields, which the apiserver reads as
 * "keep the existing ones" on an update. The raw object is ours (parsed for this informer), so it
 * is trimmed in place rather than copied.
 */
export function withoutManagedFields<R extends { metadata?: { managedFields?: unknown } }>(object: R): R {
  if (object.metadata?.managedFields !== undefined) delete object.metadata.managedFields;
  return object;
}

