import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RuntimeError } from '../errors.js';
import { fifoPathOf, isNullStdio, parseOutputTarget, schemeOf } from './stdio-uri.js';

const invalid = (pattern: RegExp) => (err: unknown) => err instanceof RuntimeError && err.code === 'InvalidArgument' && pattern.test(err.message);

describe('schemeOf', () => {
  test('follows Go url.Parse: plain paths have no scheme, schemes are lower-cased', () => {
    assert.equal(schemeOf('/run/containerd/fifo/1/c-stdout'), '');
    assert.equal(schemeOf('/run/x:y'), '');
    assert.equal(schemeOf('relative/path'), '');
    assert.equal(schemeOf('FIFO:///x'), 'fifo');
    assert.equal(schemeOf('binary:///usr/bin/logger'), 'binary');
    assert.equal(schemeOf('1abc:/x'), '');
  });
});

describe('parseOutputTarget', () => {
  test('no scheme and fifo:// are fifos; empty stdout too', () => {
    assert.deepEqual(parseOutputTarget('/run/fifo/stdout'), { kind: 'fifo' });
    assert.deepEqual(parseOutputTarget('fifo:///run/fifo/stdout'), { kind: 'fifo' });
    assert.deepEqual(parseOutputTarget(''), { kind: 'fifo' });
  });

  test('file:// gives the decoded absolute path', () => {
    assert.deepEqual(parseOutputTarget('file:///var/log/a%20b/c.log'), { kind: 'file', path: '/var/log/a b/c.log' });
  });

  test('file:// with a host or without a path is refused with the form to use', () => {
    assert.throws(() => parseOutputTarget('file://host/x.log'), invalid(/file:\/\/\/absolute\/path/));
    assert.throws(() => parseOutputTarget('file:///'), invalid(/absolute path/));
  });

  test('binary:// query pairs become argv pairs in order, env.* pairs environment variables', () => {
    assert.deepEqual(parseOutputTarget('binary:///usr/bin/logger?id=7&mode=a+b&env.LEVEL=debug&flag&id=dup&env.CONTAINER_ID=x'), {
      kind: 'binary',
      logger: { path: '/usr/bin/logger', args: ['id', '7', 'mode', 'a b', 'flag', ''], env: ['LEVEL=debug'] },
    });
  });

  test('an unknown scheme says "unknown STDIO scheme"', () => {
    assert.throws(() => parseOutputTarget('syslog://localhost'), invalid(/^unknown STDIO scheme 'syslog'/));
  });
});

describe('fifoPathOf and isNullStdio', () => {
  test('fifo:// URIs become paths, plain paths stay', () => {
    assert.equal(fifoPathOf('fifo:///run/x/stdout'), '/run/x/stdout');
    assert.equal(fifoPathOf('/run/x/stdout'), '/run/x/stdout');
  });

  test('null means all three empty, whatever the terminal flag', () => {
    assert.equal(isNullStdio({ stdin: '', stdout: '', stderr: '', terminal: false }), true);
    assert.equal(isNullStdio({ stdin: '', stdout: '', stderr: '', terminal: true }), true);
    assert.equal(isNullStdio({ stdin: '', stdout: '', stderr: '/x', terminal: false }), false);
  });
});
