/**
 * The integration harness: a private containerd, ctr, locally built test images, and
 * containerd's gRPC API. Integration test files import from here.
 */
export * from './containerd.js';
export * from './containerd-config.js';
export * from './ctr.js';
export * from './image.js';
export * from './mounts.js';
export * from './processes.js';
export * from './tar.js';
export * from './grpc.js';
export * from './lifecycle.js';
