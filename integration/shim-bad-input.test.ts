/**
 * Bad input over a real daemon socket never takes the daemon down (DESIGN.md section 3).
 *
 * A daemon started by containerd for a normal container (`keeper`) is sent, with tsrun's
 * own ttrpc client and Task definitions, what containerd never sends but a buggy or hostile
 * client could: invalid ids, bundles that are missing or hold an invalid spec, a taken id,
 * transitions that cannot happen, an undecodable payload, unknown methods and services,
 * garbage frames, and a peer of another uid. Each gets the status containerd maps to the
 * right errdefs error, with a message that names what failed and what is allowed; after
 * each, the keeper still runs and its daemon still answers; and at the end the daemon exits
 * as usual once containerd deletes the keeper.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { containerd as api } from '../protos/index.js';
import { Code, FRAME_HEADER_LENGTH, MessageType, TtrpcError, codeName, encodeFrame } from '../ttrpc/index.js';
import { BUSYBOX_IMAGE, TSRUN_BIN_DIR, isAlive, useContainerd } from './harness/index.js';
import { callAsForeignUser, FOREIGN_UID } from './support-resilience/foreign-peer.js';
import { createBundleWithInvalidSpec, createHandmadeBundle } from './support-resilience/handmade-bundle.js';
import { logOffset, logSince, shimLogLines } from './support-resilience/containerd-log.js';
import { assertNoTaskLeftovers } from './support-resilience/leftovers.js';
import { eventually } from './support-resilience/poll.js';
import { bundleDir, connectTask, shimIdentity, TASK_SERVICE_V2, type TaskConnection } from './support-resilience/shim-daemons.js';

const RUNTIME = 'io.containerd.tsrun.v1';
const KEEPER = 'keeper';
const CALL = { timeoutMs: 10_000 } as const;
/** How containerd's client packs an exec's OCI Process (typeurl, JSON value). */
const PROCESS_TYPE_URL = 'types.containerd.io/opencontainers/runtime-spec/1/Process';

function processSpec(args: readonly string[]): { type_url: string; value: Buffer } {
  return { type_url: PROCESS_TYPE_URL, value: Buffer.from(JSON.stringify({ args, cwd: '/', env: ['PATH=/bin'], user: { uid: 0, gid: 0 } })) };
}

/** The status a call was answered with. @throws AssertionError when it succeeded or failed otherwise. */
async function rejection(call: Promise<unknown>): Promise<TtrpcError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof TtrpcError, `expected a ttrpc status, got ${String(error)}`);
    return error;
  }
  assert.fail('the daemon accepted the call');
}

async function assertStatus(call: Promise<unknown>, code: Code, message: RegExp): Promise<void> {
  const error = await rejection(call);
  assert.equal(codeName(error.code), codeName(code), `status of "${error.message}"`);
  assert.match(error.message, message);
}

describe('bad input over a real daemon socket', () => {
  const containerd = useContainerd({ extraPath: [TSRUN_BIN_DIR], images: true });
  let connection: TaskConnection;
  let keeperShimPid = 0;
  let keeperPid = 0;
  let handmadeDir = '';

  before(async () => {
    const c = containerd();
    await c.ctr.ok(['run', '-d', '--runtime', RUNTIME, BUSYBOX_IMAGE, KEEPER, 'sleep', '3600'], { timeoutMs: 60_000 });
    const identity = await shimIdentity(c, c.namespace, KEEPER);
    keeperShimPid = identity.shimPid;
    keeperPid = identity.taskPid;
    connection = await connectTask(identity.socket);
    handmadeDir = join(c.baseDir, 'handmade');
    await mkdir(handmadeDir, { recursive: true });
  });
  after(async () => {
    await connection.client.close();
  });

  /** The keeper runs and its daemon answers, on the same connection that carried the bad input. */
  async function assertStillServing(): Promise<void> {
    assert.equal(connection.client.isClosed, false, 'the connection that carried the bad input is still open');
    const state = await connection.task.State({ id: KEEPER }, CALL);
    assert.equal(state.status, api.v1.types.Status.RUNNING);
    assert.equal(state.pid, keeperPid);
    assert.equal((await connection.task.Connect({ id: KEEPER }, CALL)).shimPid, keeperShimPid);
    assert.ok(isAlive(keeperShimPid));
  }

  test('invalid container and exec ids are InvalidArgument, naming the id and what an id may hold', async () => {
    const { task } = connection;
    const bundle = bundleDir(containerd(), containerd().namespace, KEEPER);
    const allowed = /ids may hold letters, digits, '\.', '_' and '-' \(at most 76\)/;
    for (const id of ['../x', 'a/b', '', 'x'.repeat(77)]) {
      await assertStatus(task.Create({ id, bundle }, CALL), Code.InvalidArgument, new RegExp(`^container id '${id.replace(/[.]/g, '\\.')}' is invalid: `));
      await assertStatus(task.State({ id }, CALL), Code.InvalidArgument, allowed);
    }
    await assertStatus(task.Kill({ id: KEEPER, execId: 'a/b', signal: 9 }, CALL), Code.InvalidArgument, /^exec id 'a\/b' is invalid: ids may hold/);
    await assertStatus(task.Exec({ id: KEEPER, execId: '../e', spec: processSpec(['true']) }, CALL), Code.InvalidArgument, /^exec id '\.\.\/e' is invalid/);
    await assertStillServing();
  });

  test('a missing bundle is NotFound, an invalid config.json InvalidArgument, a taken id AlreadyExists', async () => {
    const { task } = connection;
    await assertStatus(task.Create({ id: 'no-bundle', bundle: '/nonexistent/tsrun/bundle' }, CALL), Code.NotFound, /bundle '\/nonexistent\/tsrun\/bundle' does not exist/);
    await assertStatus(task.Create({ id: 'relative', bundle: 'relative/bundle' }, CALL), Code.InvalidArgument, /bundle path 'relative\/bundle' is not absolute/);
    const invalid = await createBundleWithInvalidSpec(handmadeDir, 'invalid-spec');
    await assertStatus(task.Create({ id: 'invalid-spec', bundle: invalid }, CALL), Code.InvalidArgument, /the config\.json of bundle '.*invalid-spec' is not valid JSON/);
    const keeperBundle = bundleDir(containerd(), containerd().namespace, KEEPER);
    await assertStatus(task.Create({ id: KEEPER, bundle: keeperBundle }, CALL), Code.AlreadyExists, /container 'keeper' already exists/);
    // A failed create leaves no trace: the id is free and unknown.
    await assertStatus(task.State({ id: 'invalid-spec' }, CALL), Code.NotFound, /container 'invalid-spec' not found/);
    await assertStillServing();
  });

  test('calls the state does not allow: start twice, delete while running, pause before start, unknown exec or container, a taken exec id', async () => {
    const { task } = connection;
    await assertStatus(task.Start({ id: KEEPER }, CALL), Code.FailedPrecondition, /cannot start task in running state: it was already started/);
    await assertStatus(task.Delete({ id: KEEPER }, CALL), Code.FailedPrecondition, /cannot delete a running process: kill it and wait for it to exit first/);
    await assertStatus(task.Kill({ id: KEEPER, execId: 'no-such-exec', signal: 15 }, CALL), Code.NotFound, /exec 'no-such-exec' not found in container 'keeper'/);
    await assertStatus(task.State({ id: 'no-such-container' }, CALL), Code.NotFound, /container 'no-such-container' not found/);
    await assertStatus(task.Kill({ id: 'no-such-container', signal: 9 }, CALL), Code.NotFound, /container 'no-such-container' not found/);

    await task.Exec({ id: KEEPER, execId: 'taken', spec: processSpec(['sleep', '1']) }, CALL);
    await assertStatus(task.Exec({ id: KEEPER, execId: 'taken', spec: processSpec(['sleep', '1']) }, CALL), Code.AlreadyExists, /exec 'taken' already exists in container 'keeper'/);
    await assertStatus(task.Exec({ id: KEEPER, execId: 'no-spec' }, CALL), Code.InvalidArgument, /exec process spec is missing/);
    await task.Delete({ id: KEEPER, execId: 'taken' }, CALL);
    await assertStatus(task.State({ id: KEEPER, execId: 'taken' }, CALL), Code.NotFound, /exec 'taken' not found/);

    // A container created (through this very socket, from a bundle made by hand) but not started.
    const c = containerd();
    const made = await createHandmadeBundle({
      dir: handmadeDir,
      id: 'made-created',
      namespace: c.namespace,
      template: join(bundleDir(c, c.namespace, KEEPER), 'config.json'),
      args: ['sleep', '3600'],
    });
    const created = await task.Create({ id: 'made-created', bundle: made }, { timeoutMs: 30_000 });
    assert.ok(created.pid > 0);
    try {
      assert.equal((await task.State({ id: 'made-created' }, CALL)).status, api.v1.types.Status.CREATED);
      await assertStatus(task.Pause({ id: 'made-created' }, CALL), Code.FailedPrecondition, /cannot pause task in created state: start it first/);
      await assertStatus(task.Resume({ id: 'made-created' }, CALL), Code.FailedPrecondition, /cannot resume task in created state: only a paused task can be resumed/);
    } finally {
      await task.Delete({ id: 'made-created' }, { timeoutMs: 30_000 });
    }
    await assertStatus(task.State({ id: 'made-created' }, CALL), Code.NotFound, /container 'made-created' not found/);
    await eventually(`the created container's init (pid ${created.pid}) is gone`, () => !isAlive(created.pid));
    await assertStillServing();
  });

  test('an undecodable payload is Internal, an unknown method or service Unimplemented, and garbage frames close only their own connection', async () => {
    const { client } = connection;
    // 0xff...: a field with wire type 7, which protobuf does not have.
    await assertStatus(client.call(TASK_SERVICE_V2, 'State', Buffer.alloc(16, 0xff), CALL), Code.Internal, /ttrpc: error unmarshalling payload/);
    await assertStatus(client.call(TASK_SERVICE_V2, 'Frobnicate', new Uint8Array(0), CALL), Code.Unimplemented, /method Frobnicate/);
    await assertStatus(client.call('containerd.task.v9.Task', 'State', new Uint8Array(0), CALL), Code.Unimplemented, /service containerd\.task\.v9\.Task/);

    // Raw bytes on connections of their own: text that is no frame (its "length" says about
    // 1.2 GB), a frame with a client stream id that must be odd, a request that is no envelope.
    const socket = (await shimIdentity(containerd(), containerd().namespace, KEEPER)).socket;
    const garbage = [
      Buffer.from('GET / HTTP/1.1\r\nHost: tsrun\r\n\r\n'),
      encodeFrame(2, MessageType.Request, 0, Buffer.from([0x0a, 0x01, 0x78])),
      encodeFrame(1, MessageType.Request, 0, Buffer.alloc(32, 0xff)),
      Buffer.alloc(FRAME_HEADER_LENGTH - 1, 0x01),
    ];
    for (const bytes of garbage) await sendRaw(socket, bytes);
    await assertStillServing();
  });

  test('a peer of another uid is refused: the socket is root-only, and a client past the file mode is closed without an answer', async () => {
    const c = containerd();
    const socket = (await shimIdentity(c, c.namespace, KEEPER)).socket;
    const plain = await callAsForeignUser(socket, KEEPER, false);
    assert.deepEqual(plain, { kind: 'connect-failed', code: 'EACCES' }, `uid ${FOREIGN_UID} cannot open the 0600 socket`);

    const offset = logOffset(c);
    const privileged = await callAsForeignUser(socket, KEEPER, true);
    assert.deepEqual(privileged, { kind: 'closed' }, `the daemon closes a uid ${FOREIGN_UID} connection without answering`);
    await eventually('the daemon logs the refusal to containerd', () =>
      shimLogLines(logSince(c, offset)).some((line) => String(line['msg']).includes('refused') && line['peerUid'] === FOREIGN_UID),
    );
    await assertStillServing();
  });

  test('after all of it the daemon exits as usual once containerd deletes the keeper, leaving nothing behind', async () => {
    const c = containerd();
    const socket = (await shimIdentity(c, c.namespace, KEEPER)).socket;
    await connection.client.close();
    await c.ctr.removeContainer(KEEPER, { timeoutMs: 60_000 });
    await eventually(`the daemon (pid ${keeperShimPid}) exits`, () => !isAlive(keeperShimPid));
    await assertNoTaskLeftovers(c, { namespace: c.namespace, ids: [KEEPER, 'made-created', 'invalid-spec'], sockets: [socket] });
  });
});

/**
 * Writes `bytes` on a fresh connection to `socket`, reads whatever the daemon answers, and
 * closes it after half a second (a partial frame is legitimately waited on). Whatever the daemon
 * makes of the bytes, it must not take anything else down.
 */
function sendRaw(socket: string, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const raw = netConnect(socket);
    const timer = setTimeout(() => raw.destroy(), 500);
    raw.once('connect', () => raw.write(bytes));
    raw.on('data', () => undefined);
    raw.on('error', () => undefined);
    raw.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
