export * from './extensions.js';
export * from './client-hello.js';
export * from './server-hello.js';
export * from './handshake.js';
export * from './alert.js';
