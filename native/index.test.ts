// The loader and the contract: the addon found from the build output, loaded once,
// and exporting every function the facade declares.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { findAddon, loadNative } from './index.js';
import type { Native } from './index.js';

// Every member of Native, checked both ways at compile time: a name missing here or
// not in Native fails the build.
const MEMBERS = [
  'setChildSubreaper',
  'spawn',
  'pidfdOpen',
  'pidfdSendSignal',
  'pidfdWait',
  'reapOrphans',
  'watchReadable',
  'sendFds',
  'receiveFds',
  'peerCredentials',
  'setWindowSize',
  'getWindowSize',
  'openFifo',
  'dup2',
  'close',
  'eventfd',
  'openPty',
  'mount',
  'umount2',
  'pipe',
  'pendingBytes',
  'socketPair',
  'listenUnix',
] as const satisfies readonly (keyof Native)[];
type Missing = Exclude<keyof Native, (typeof MEMBERS)[number]>;
const everyMemberListed: [Missing] extends [never] ? true : Missing = true;

describe('loadNative', () => {
  test('loads the addon once and exports every facade function', () => {
    assert.equal(everyMemberListed, true);
    const native = loadNative();
    assert.equal(loadNative(), native);
    for (const name of MEMBERS) assert.equal(typeof native[name], 'function', name);
  });

  test('finds the addon from the build output, and says how to build it when missing', () => {
    assert.match(findAddon(), /native\/build\/Release\/tsrun_native\.node$/);
    assert.throws(() => findAddon('/'), /was not found above \/: build it with `npm install`/);
  });
});
