import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RuntimeError } from './errors.js';
import { MAX_ID_LENGTH, isValidId, validateId } from './ids.js';

describe('ids', () => {
  test('accepts letters, digits, dot, underscore and dash up to 76 characters', () => {
    for (const id of ['a', 'c1', 'A.b_c-d', '0123', 'x'.repeat(MAX_ID_LENGTH), 'a.b', '.hidden', 'trailing.']) {
      assert.equal(isValidId(id), true, id);
      validateId('container', id);
    }
  });

  test('refuses empty, over-long, dot, dot-dot and path-like ids with a sentence', () => {
    for (const id of ['', '.', '..', '../x', 'a..b', 'a/b', '/abs', 'x'.repeat(MAX_ID_LENGTH + 1), 'sp ace', 'tab\t', 'nul\u0000', 'é']) {
      assert.equal(isValidId(id), false, JSON.stringify(id));
      assert.throws(
        () => {
          validateId('exec', id);
        },
        (err: unknown) => err instanceof RuntimeError && err.code === 'InvalidArgument' && err.message.startsWith('exec id '),
      );
    }
  });

  test('the message names the id and the rule', () => {
    assert.throws(
      () => {
        validateId('container', '../x');
      },
      { message: "container id '../x' is invalid: ids may hold letters, digits, '.', '_' and '-' (at most 76)" },
    );
  });

  test('control characters are escaped and long ids shortened in the message', () => {
    assert.throws(
      () => {
        validateId('container', 'a\nb');
      },
      { message: /^container id 'a\\x0ab' is invalid/ },
    );
    assert.throws(
      () => {
        validateId('container', 'y'.repeat(500));
      },
      (err: unknown) => err instanceof Error && err.message.length < 250,
    );
  });
});
