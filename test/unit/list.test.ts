import { test } from 'node:test';
import assert from 'node:assert/strict';
import { capacityFromBlkinfo } from '../../src/core/list.js';

// `virsh domblkinfo DOM --all` as virsh 9 prints it (including the trailing blank line).
const TABLE = [
  ' Target   Capacity     Allocation   Physical',
  '----------------------------------------------',
  ' vda      1073741824   200704       196624',
  ' vdb      21474836480  0            0',
  ' sda      11288576     11288576     11288576',
  '',
  '',
].join('\n');

const EMPTY_CDROM = [
  ' Target   Capacity     Allocation   Physical',
  '----------------------------------------------',
  ' vda      1073741824   200704       196624',
  ' sda      -            -            -',
  '',
].join('\n');

test('capacityFromBlkinfo reads the Capacity column of the target row', () => {
  const cases: [string | undefined, string, number | undefined][] = [
    [TABLE, 'vda', 1073741824],
    [TABLE, 'vdb', 21474836480],
    [TABLE, 'sda', 11288576],
    [TABLE, 'vdc', undefined], // unknown target
    [TABLE, 'Target', undefined], // the header is not a row
    [TABLE, '', undefined], // blank lines are not rows
    [EMPTY_CDROM, 'sda', undefined], // empty cdrom: "-"
    [EMPTY_CDROM, 'vda', 1073741824],
    [undefined, 'vda', undefined], // the batch command failed
    ['', 'vda', undefined],
  ];
  for (const [table, target, expected] of cases) {
    assert.equal(capacityFromBlkinfo(table, target), expected, `${target} in ${JSON.stringify(table?.slice(0, 20))}`);
  }
});
