/**
 * Helpers of the tsrun end-to-end tests (shim-*.test.ts) on top of the harness: a private
 * containerd with the tsrun runtime and a leftover check, long-running and pty-backed
 * ctr processes, ctr output parsers, decoded task events, and the CRIU check.
 */
export * from './criu.js';
export * from './ctr-process.js';
export * from './events.js';
export * from './poll.js';
export * from './tasks.js';
export * from './tsrun-containerd.js';
export * from './fifo-client.js';
