import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AnyUnpackError,
  containerd,
  google,
  isKnownTypeUrl,
  packAny,
  typeNameOf,
  unpackAny,
  unpackAnyAs,
  type TypeUrl,
} from './index.js';

const exit = { containerId: 'c1', id: 'c1', pid: 7, exitStatus: 3 };

describe('type URLs', () => {
  test('packAny uses the bare full name of the message', () => {
    assert.equal(packAny('containerd.events.TaskExit', exit).type_url, 'containerd.events.TaskExit');
  });

  test('every registered type URL is the full name protobufjs knows for that message', () => {
    const samples: Record<TypeUrl, string> = {
      'containerd.events.TaskCreate': containerd.events.TaskCreate.getTypeUrl(''),
      'containerd.events.TaskStart': containerd.events.TaskStart.getTypeUrl(''),
      'containerd.events.TaskDelete': containerd.events.TaskDelete.getTypeUrl(''),
      'containerd.events.TaskExit': containerd.events.TaskExit.getTypeUrl(''),
      'containerd.events.TaskOOM': containerd.events.TaskOOM.getTypeUrl(''),
      'containerd.events.TaskExecAdded': containerd.events.TaskExecAdded.getTypeUrl(''),
      'containerd.events.TaskExecStarted': containerd.events.TaskExecStarted.getTypeUrl(''),
      'containerd.events.TaskPaused': containerd.events.TaskPaused.getTypeUrl(''),
      'containerd.events.TaskResumed': containerd.events.TaskResumed.getTypeUrl(''),
      'containerd.events.TaskCheckpointed': containerd.events.TaskCheckpointed.getTypeUrl(''),
      'containerd.runc.v1.Options': containerd.runc.v1.Options.getTypeUrl(''),
      'containerd.runc.v1.CheckpointOptions': containerd.runc.v1.CheckpointOptions.getTypeUrl(''),
      'containerd.runc.v1.ProcessDetails': containerd.runc.v1.ProcessDetails.getTypeUrl(''),
      'runtimeoptions.v1.Options': '/runtimeoptions.v1.Options',
      'io.containerd.cgroups.v1.Metrics': '/io.containerd.cgroups.v1.Metrics',
      'io.containerd.cgroups.v2.Metrics': '/io.containerd.cgroups.v2.Metrics',
      'containerd.runtime.bootstrap.v1.BootstrapParams': containerd.runtime.bootstrap.v1.BootstrapParams.getTypeUrl(''),
      'containerd.runtime.bootstrap.v1.BootstrapResult': containerd.runtime.bootstrap.v1.BootstrapResult.getTypeUrl(''),
    };
    for (const [typeUrl, generated] of Object.entries(samples)) {
      assert.equal(`/${typeUrl}`, generated);
      assert.equal(packAny(typeUrl as TypeUrl, {}).type_url, typeUrl);
    }
  });

  test('typeNameOf strips any prefix up to the last slash', () => {
    assert.equal(typeNameOf('containerd.events.TaskExit'), 'containerd.events.TaskExit');
    assert.equal(typeNameOf('type.googleapis.com/containerd.events.TaskExit'), 'containerd.events.TaskExit');
    assert.equal(typeNameOf('types.containerd.io/opencontainers/runtime-spec/1/Process'), 'Process');
  });

  test('isKnownTypeUrl accepts bare and prefixed URLs of registered types only', () => {
    assert.ok(isKnownTypeUrl('containerd.runc.v1.Options'));
    assert.ok(isKnownTypeUrl('type.googleapis.com/containerd.runc.v1.Options'));
    assert.ok(!isKnownTypeUrl('containerd.runc.v1.Nope'));
    assert.ok(!isKnownTypeUrl('toString'));
    assert.ok(!isKnownTypeUrl(''));
  });
});

describe('unpacking', () => {
  test('unpackAny accepts a type.googleapis.com/ prefix', () => {
    const any = packAny('containerd.events.TaskExit', exit);
    const unpacked = unpackAny({ type_url: `type.googleapis.com/${any.type_url}`, value: any.value });
    assert.equal(unpacked.typeUrl, 'containerd.events.TaskExit');
    assert.equal(unpacked.message.exitStatus, 3);
  });

  test('unpackAny narrows the message by type URL', () => {
    const unpacked = unpackAny(packAny('containerd.runc.v1.Options', { binaryName: 'crun' }));
    switch (unpacked.typeUrl) {
      case 'containerd.runc.v1.Options':
        assert.equal(unpacked.message.binaryName, 'crun');
        break;
      default:
        assert.fail(`unexpected ${unpacked.typeUrl}`);
    }
  });

  test('an Any without value unpacks as the message with all defaults', () => {
    const unpacked = unpackAnyAs({ type_url: 'containerd.runc.v1.Options' }, 'containerd.runc.v1.Options');
    assert.equal(unpacked.binaryName, '');
  });

  test('an unknown type URL is an AnyUnpackError with code unknown-type', () => {
    assert.throws(
      () =>
        unpackAny({
          type_url: 'types.containerd.io/opencontainers/runtime-spec/1/Process',
          value: new Uint8Array([0x7b, 0x7d]),
        }),
      (error: unknown) =>
        error instanceof AnyUnpackError &&
        error.code === 'unknown-type' &&
        error.typeUrl === 'types.containerd.io/opencontainers/runtime-spec/1/Process' &&
        error.message.includes("'types.containerd.io/opencontainers/runtime-spec/1/Process'"),
    );
    assert.throws(
      () => unpackAny({}),
      (error: unknown) => error instanceof AnyUnpackError && error.code === 'unknown-type',
    );
  });

  test('unpackAnyAs refuses another type, known or not, with code unexpected-type', () => {
    const options = packAny('runtimeoptions.v1.Options', { configPath: '/c' });
    assert.throws(
      () => unpackAnyAs(options, 'containerd.runc.v1.Options'),
      (error: unknown) =>
        error instanceof AnyUnpackError &&
        error.code === 'unexpected-type' &&
        error.message === "expected an Any of type 'containerd.runc.v1.Options' but got 'runtimeoptions.v1.Options'",
    );
  });

  test('bytes that are not the named message are an AnyUnpackError with code malformed and the cause', () => {
    const broken = google.protobuf.Any.create({
      type_url: 'containerd.events.TaskExit',
      value: new Uint8Array([0x0a, 0x05, 0x63]),
    });
    assert.throws(
      () => unpackAny(broken),
      (error: unknown) => error instanceof AnyUnpackError && error.code === 'malformed' && error.cause instanceof Error,
    );
  });
});
