/**
 * Loads the addon and exposes it as the typed {@link Native} facade.
 * (Placeholder until the addon lands: see native/facade.ts for the contract.)
 */
export type * from './facade.js';
