import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mountsUnder, parseMountInfo } from './mounts.js';

test('mountinfo lines parse, with octal escapes in mount points decoded', () => {
  const text = [
    '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw',
    '44 27 0:50 / /tmp/ctd-a/state/x\\040y/rootfs rw,relatime shared:1 - overlay overlay rw,lowerdir=/a',
    'garbage',
    '',
  ].join('\n');
  assert.deepEqual(parseMountInfo(text), [
    { id: 27, parentId: 1, mountPoint: '/', fsType: 'ext4', source: '/dev/vda' },
    { id: 44, parentId: 27, mountPoint: '/tmp/ctd-a/state/x y/rootfs', fsType: 'overlay', source: 'overlay' },
  ]);
});

test('mountsUnder matches the directory and what lies beneath it, not a sibling sharing its prefix', async () => {
  // /proc is mounted on every Linux host; /pro is not a prefix match of it.
  assert.ok((await mountsUnder('/proc')).some((m) => m.mountPoint === '/proc'));
  assert.deepEqual(await mountsUnder('/pro'), []);
});
