import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Code, codeName } from './code.js';
import { ConnectionClosedError, isConnectionClosed, TtrpcError } from './ttrpc-error.js';

test('Code has the gRPC names and numbers', () => {
  const expected = [
    'OK',
    'Canceled',
    'Unknown',
    'InvalidArgument',
    'DeadlineExceeded',
    'NotFound',
    'AlreadyExists',
    'PermissionDenied',
    'ResourceExhausted',
    'FailedPrecondition',
    'Aborted',
    'OutOfRange',
    'Unimplemented',
    'Internal',
    'Unavailable',
    'DataLoss',
    'Unauthenticated',
  ];
  assert.deepEqual(Object.keys(Code), expected);
  assert.deepEqual(
    Object.values(Code),
    expected.map((_, i) => i),
  );
  assert.equal(codeName(Code.NotFound), 'NotFound');
  assert.equal(codeName(99), 'Code(99)');
});

test('TtrpcError.from keeps a TtrpcError as is', () => {
  const error = new TtrpcError(Code.NotFound, 'container "a" does not exist');
  assert.equal(TtrpcError.from(error), error);
});

test('TtrpcError.from turns an unknown error into Unknown with the message only, keeping the cause', () => {
  const original = new Error('disk on fire');
  const error = TtrpcError.from(original);
  assert.equal(error.code, Code.Unknown);
  assert.equal(error.message, 'disk on fire');
  assert.equal(error.cause, original);
  assert.ok(!error.message.includes('at '), 'no stack in the message');
});

test('TtrpcError.from maps what Go convertCode maps', () => {
  const errno = (code: string): Error => Object.assign(new Error(`${code}: failed`), { code });
  assert.equal(TtrpcError.from(errno('ENOENT')).code, Code.NotFound);
  assert.equal(TtrpcError.from(errno('EEXIST')).code, Code.AlreadyExists);
  assert.equal(TtrpcError.from(errno('ENOTEMPTY')).code, Code.AlreadyExists);
  assert.equal(TtrpcError.from(errno('EACCES')).code, Code.PermissionDenied);
  assert.equal(TtrpcError.from(errno('EPERM')).code, Code.PermissionDenied);
  assert.equal(TtrpcError.from(errno('ESRCH')).code, Code.Unknown);
  const aborted = new AbortController();
  aborted.abort();
  assert.equal(TtrpcError.from(aborted.signal.reason).code, Code.Canceled);
  assert.equal(TtrpcError.from(new DOMException('late', 'TimeoutError')).code, Code.DeadlineExceeded);
});

test('TtrpcError.from describes thrown non-errors briefly', () => {
  assert.equal(TtrpcError.from('plain string').message, 'plain string');
  assert.match(TtrpcError.from(42).message, /non-error value thrown: 42/);
  const big = TtrpcError.from({ list: 'x'.repeat(10_000) });
  assert.ok(big.message.length < 300);
  assert.equal(TtrpcError.from(undefined, Code.Internal).code, Code.Internal);
});

test('a TtrpcError with code OK becomes Unknown: OK is not an error', () => {
  assert.equal(new TtrpcError(Code.OK, 'x').code, Code.Unknown);
});

test('ConnectionClosedError is a TtrpcError with Unavailable and closed: true', () => {
  const error = new ConnectionClosedError('ttrpc: connection closed');
  assert.ok(error instanceof TtrpcError);
  assert.equal(error.code, Code.Unavailable);
  assert.equal(error.closed, true);
  assert.equal(error.name, 'ConnectionClosedError');
  assert.ok(isConnectionClosed(error));
  assert.ok(!isConnectionClosed(new TtrpcError(Code.Unavailable, 'busy')));
});
