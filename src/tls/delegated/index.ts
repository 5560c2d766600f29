/** Delegated credentials for TLS 1.3 (RFC 9345): codec, issuance, validation and server selection. */
export * from './types.js';
export * from './codec.js';
export * from './signed-content.js';
export * from './errors.js';
export * from './algorithms.js';
export * from './certificate.js';
export * from './verify.js';
export * from './issue.js';
export * from './credential-set.js';
export * from './loader.js';
export * from './hooks.js';
export * from './inspect.js';
