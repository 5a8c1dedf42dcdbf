/**
 * The runtime core's public surface: what shim/ uses. See api.ts for the contract.
 */
export type * from './api.js';
export { createRuntime, DEFAULT_IO_DRAIN_TIMEOUT_MS } from './runtime.js';
export { RuntimeError } from './errors.js';
export { isValidId, validateId, MAX_ID_LENGTH } from './ids.js';
export { defaultRuntimeRoot, defaultRuntimeSettings, runtimeInvocationChannel, type RuntimeInvocationMessage } from './runc.js';
export { createProcessMonitor, exitStatusOf, UNKNOWN_EXIT } from './process-monitor.js';
export type { AdoptOptions, MonitoredChild, ProcessMonitor } from './process-monitor.js';
