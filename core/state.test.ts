import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { ExitInfo } from './api.js';
import { RuntimeError } from './errors.js';
import type { State } from './state.js';
import * as machine from './state.js';

const EXIT: ExitInfo = { pid: 42, exitStatus: 3, exitedAt: new Date(0) };

const ALL: readonly State[] = [
  { status: 'created' },
  { status: 'running' },
  { status: 'pausing' },
  { status: 'paused' },
  { status: 'stopped', exit: EXIT },
  { status: 'deleted', exit: EXIT },
];

function code(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err instanceof RuntimeError ? err.code : 'bug';
  }
}

describe('state machine', () => {
  test('a full life: created -> running -> pausing -> paused -> running -> stopped -> deleted', () => {
    let s: State = machine.CREATED;
    s = machine.start(s, 'task');
    assert.equal(s.status, 'running');
    s = machine.beginPause(s, 'task');
    assert.equal(s.status, 'pausing');
    s = machine.endPause(s, true);
    assert.equal(s.status, 'paused');
    s = machine.resume(s, 'task');
    assert.equal(s.status, 'running');
    s = machine.exit(s, EXIT);
    assert.deepEqual(s, { status: 'stopped', exit: EXIT });
    s = machine.remove(s, 'task');
    assert.deepEqual(s, { status: 'deleted', exit: EXIT });
    assert.equal(machine.exitOf(s), EXIT);
  });

  test('a failed pause goes back to running; an exit while pausing stays stopped', () => {
    assert.equal(machine.endPause({ status: 'pausing' }, false).status, 'running');
    const stopped = machine.exit({ status: 'pausing' }, EXIT);
    assert.equal(machine.endPause(stopped, true), stopped);
  });

  test('invalid transitions are FailedPrecondition sentences', () => {
    assert.throws(() => machine.beginPause({ status: 'created' }, 'task'), { message: 'cannot pause task in created state: start it first' });
    assert.throws(() => machine.start({ status: 'running' }, 'exec'), { message: 'cannot start exec in running state: it was already started' });
    assert.throws(() => machine.resume({ status: 'running' }, 'task'), { message: 'cannot resume task in running state: only a paused task can be resumed' });
    assert.throws(() => machine.remove({ status: 'running' }, 'task'), { message: 'cannot delete a running process: kill it and wait for it to exit first' });
    assert.throws(() => machine.remove({ status: 'paused' }, 'task'), { message: 'cannot delete a running process: kill it and wait for it to exit first' });
  });

  test('every verb in every state: allowed, FailedPrecondition or NotFound, never a crash', () => {
    const table: Record<string, (s: State) => unknown> = {
      start: (s) => machine.start(s, 'task'),
      pause: (s) => machine.beginPause(s, 'task'),
      resume: (s) => machine.resume(s, 'task'),
      delete: (s) => machine.remove(s, 'task'),
      kill: (s) => {
        machine.assertKillable(s, 'task');
      },
      exec: (s) => {
        machine.assertCanExec(s);
      },
      update: (s) => {
        machine.assertCanUpdate(s);
      },
      checkpoint: (s) => {
        machine.assertCanCheckpoint(s);
      },
      io: (s) => {
        machine.assertHasIO(s, 'task');
      },
    };
    const expected: Record<string, (string | undefined)[]> = {
      //            created   running  pausing  paused   stopped  deleted
      start: [undefined, 'FailedPrecondition', 'FailedPrecondition', 'FailedPrecondition', 'FailedPrecondition', 'FailedPrecondition'],
      pause: ['FailedPrecondition', undefined, 'FailedPrecondition', 'FailedPrecondition', 'FailedPrecondition', 'FailedPrecondition'],
      resume: ['FailedPrecondition', 'FailedPrecondition', 'FailedPrecondition', undefined, 'FailedPrecondition', 'FailedPrecondition'],
      delete: [undefined, 'FailedPrecondition', 'FailedPrecondition', 'FailedPrecondition', undefined, 'NotFound'],
      kill: [undefined, undefined, undefined, undefined, 'NotFound', 'NotFound'],
      exec: [undefined, undefined, undefined, undefined, 'FailedPrecondition', 'FailedPrecondition'],
      update: [undefined, undefined, undefined, undefined, 'FailedPrecondition', 'FailedPrecondition'],
      checkpoint: ['FailedPrecondition', undefined, 'FailedPrecondition', undefined, 'FailedPrecondition', 'FailedPrecondition'],
      io: [undefined, undefined, undefined, undefined, undefined, 'NotFound'],
    };
    for (const [verb, fn] of Object.entries(table)) {
      assert.deepEqual(
        ALL.map((s) => code(() => fn(s))),
        expected[verb],
        verb,
      );
    }
  });

  test('recording an exit twice is a bug, not a user error', () => {
    const stopped = machine.exit({ status: 'running' }, EXIT);
    assert.throws(() => machine.exit(stopped, EXIT), (err: unknown) => !(err instanceof RuntimeError));
  });
});
