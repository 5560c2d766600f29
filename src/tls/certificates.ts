/**
 * The X.509 code moved to ./x509/ (see ./x509/index.ts). This re-export stays only for
 * src/operator, which is being changed elsewhere at the same time; new code imports
 * ./x509/index.js, and this file goes once src/operator does too.
 */
export * from './x509/index.js';
