// A host of a test's own (not a test file itself): state, images and cache dirs in a temp dir, files with content of
// their own (so a file that must be left alone is seen to be unchanged), and a core Context on the strict fake runner.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { journalsDir, type JournalRecord } from '../../src/core/ops/journal.js';
import type { Expected } from './fake-runner.js';
import { fakeContext } from './virsh-fake.js';

/** What `file` writes: each file's own. */
const contentOf = (path: string) => `data of ${path}\n`;

export function tempHost() {
  const root = mkdtempSync(join(tmpdir(), 'vms-host-'));
  const dirs = {
    state: join(root, 'state'),
    images: join(root, 'images'),
    cache: join(root, 'cache'),
    outside: join(root, 'outside'),
  };
  for (const d of Object.values(dirs)) mkdirSync(d);
  const env = { VMS_STATE_DIR: dirs.state, VMS_IMAGES_DIR: dirs.images, VMS_CACHE_DIR: dirs.cache };
  return {
    ...dirs,
    /** The settings that point vms at these dirs (for fakeContext or runCli). */
    env,
    /** A VM's directory in the state dir. */
    vmDir: (name: string) => join(dirs.state, name),
    img: (name: string) => join(dirs.images, name),
    /** Writes a file with its own content; returns its path. */
    file: (path: string) => {
      writeFileSync(path, contentOf(path));
      return path;
    },
    context: (expected: Expected[]) => fakeContext(expected, env),
    /** The journals of operations in the state dir, as they are now. */
    journals: (): JournalRecord[] => {
      const dir = journalsDir(dirs.state);
      if (!existsSync(dir)) return [];
      return readdirSync(dir)
        .filter((f) => f.endsWith('.json'))
        .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as JournalRecord);
    },
  };
}

/** Each of these files still has the content `file` gave it. */
export function assertUnchanged(paths: string[]): void {
  for (const p of paths) assert.equal(readFileSync(p, 'utf8'), contentOf(p), p);
}
