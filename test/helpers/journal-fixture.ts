// Operations' journals in a state dir of a test's own (not a test file itself): journals written as a killed vms
// would have left them, a Context over that dir, and the pid of a process that has ended.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig } from '../../src/config.js';
import { createContext, type Context } from '../../src/core/context.js';
import { journalsDir, type JournalRecord } from '../../src/core/ops/journal.js';
import { FlockLocks, type Locks } from '../../src/core/ops/locks.js';
import type { Progress } from '../../src/core/progress.js';
import { FakeRunner } from './fake-runner.js';

export const opsStateDir = () => mkdtempSync(join(tmpdir(), 'vms-op-'));

/** A Context on the state dir `dir`: real flock locks that never wait, and a runner that takes no call. */
export const opsContext = (
  dir: string,
  opts: { locks?: Locks; runner?: FakeRunner; progress?: Progress; signal?: AbortSignal } = {},
): Context =>
  createContext({
    config: resolveConfig({ env: { VMS_STATE_DIR: dir, VMS_IMAGES_DIR: dir, VMS_CONFIG: join(dir, 'none.json') } }),
    runner: opts.runner ?? new FakeRunner([]),
    locks: opts.locks ?? new FlockLocks(dir, 0),
    progress: opts.progress,
    signal: opts.signal,
  });

/** The pid of a process that has ended (a dead vms, for a journal). */
export const deadPid = () => spawnSync('true').pid!;

/** The names of the files in the journals dir. */
export const journalFiles = (dir: string) => (existsSync(journalsDir(dir)) ? readdirSync(journalsDir(dir)).sort() : []);

/** A journal as a vms killed while running `command` left it (its process gone); `over` replaces any field. */
export function deadJournal(id: string, over: Partial<JournalRecord> = {}): JournalRecord {
  return {
    id,
    pid: deadPid(),
    command: 'clone',
    vms: ['v'],
    host: false,
    started: new Date().toISOString(),
    steps: [],
    ...over,
  };
}

/** Writes `record` where its operation would have; returns its path. */
export function writeJournal(dir: string, record: JournalRecord): string {
  mkdirSync(journalsDir(dir), { recursive: true });
  const path = join(journalsDir(dir), `${record.id}.json`);
  writeFileSync(path, JSON.stringify(record));
  return path;
}

export const readJournal = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as JournalRecord;
