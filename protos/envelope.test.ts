import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ttrpc } from './index.js';

test('ttrpc Request round-trips', () => {
  const bytes = ttrpc.Request.encode({ service: 's', method: 'm', payload: new Uint8Array([1, 2]), timeoutNano: 5, metadata: [{ key: 'k', value: 'v' }] }).finish();
  const back = ttrpc.Request.decode(bytes);
  assert.equal(back.service, 's');
  assert.equal(Number(back.timeoutNano), 5);
});
