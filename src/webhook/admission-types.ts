// Wire types of admission.k8s.io/v1 AdmissionReview, the subset the webhook reads and writes.
// https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/

import type { JsonValue } from './json-patch.js';

export interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}

export interface GroupVersionResource {
  group: string;
  version: string;
  resource: string;
}

export type AdmissionOperation = 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';

export interface AdmissionRequest {
  uid: string;
  kind: GroupVersionKind;
  resource: GroupVersionResource;
  subResource?: string;
  name?: string;
  namespace?: string;
  operation: AdmissionOperation;
  object?: JsonValue;
  oldObject?: JsonValue;
  dryRun?: boolean;
}

export interface AdmissionStatus {
  code: number;
  message: string;
  reason?: string;
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: AdmissionStatus;
  patchType?: 'JSONPatch';
  /** base64 of the JSON-encoded patch operations. */
  patch?: string;
  warnings?: string[];
  auditAnnotations?: Record<string, string>;
}

export interface AdmissionReview {
  apiVersion: 'admission.k8s.io/v1';
  kind: 'AdmissionReview';
  request?: AdmissionRequest;
  response?: AdmissionResponse;
}

export class BadAdmissionReview extends Error {
  override name = 'BadAdmissionReview';
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Checks the shape of a decoded request body. Throws BadAdmissionReview with a message that says
 * which field is wrong; the server turns that into a 400.
 */
export function parseAdmissionReview(body: unknown): AdmissionReview & { request: AdmissionRequest } {
  if (!isRecord(body)) throw new BadAdmissionReview('body is not a JSON object');
  if (body['apiVersion'] !== 'admission.k8s.io/v1' || body['kind'] !== 'AdmissionReview') {
    throw new BadAdmissionReview(
      `expected apiVersion admission.k8s.io/v1 kind AdmissionReview, got ${String(body['apiVersion'])} ${String(body['kind'])}`,
    );
  }
  const request = body['request'];
  if (!isRecord(request)) throw new BadAdmissionReview('request is missing');
  if (typeof request['uid'] !== 'string' || request['uid'] === '') throw new BadAdmissionReview('request.uid is missing');
  if (typeof request['operation'] !== 'string') throw new BadAdmissionReview('request.operation is missing');
  if (!isRecord(request['kind'])) throw new BadAdmissionReview('request.kind is missing');
  if (!isRecord(request['resource'])) throw new BadAdmissionReview('request.resource is missing');
  return body as unknown as AdmissionReview & { request: AdmissionRequest };
}
