import { readFileSync } from 'node:fs';
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { processAlive } from '../host/file-lock.js';
import type { UndoAction } from './undo-actions.js';
import { makeSharedDir } from '../host/shared-dir.js';

// An operation's journal: before a command that holds locks changes anything, it writes down what it is about to
// make or change and how to take it back. The file lives while the command runs; a SIGKILL (or a crash, or a machine
// reset) leaves it behind, and the next vms command that locks finds it, sees that its process is gone, and finishes
// the undo (`vms repair` does the same on demand, `vms doctor` lists what is left). The same file names who holds a
// VM's lock, for the "busy" message.

export interface JournalStep {
  what: string;
  /** How to take the step back after a crash; absent for steps only the live process knows how to undo. */
  action?: UndoAction;
}

export interface JournalRecord {
  id: string;
  pid: number;
  /** The process's start time (/proc/PID/stat field 22): tells a reused pid from the journal's own process. */
  start?: string;
  command: string;
  vms: string[];
  host: boolean;
  started: string;
  /** Undo steps still to do, oldest first (undone newest first). */
  steps: JournalStep[];
  /** A command that cannot be taken back (destroy) goes forward instead: what is left to finish, in order. */
  finish?: { what: string; actions: UndoAction[] };
}

export const journalsDir = (stateDir: string) => join(stateDir, '.operations');

/** The start time of a process, as the kernel counts it; undefined when it cannot be read. */
export function processStart(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Whether the process that wrote a journal still runs (not merely some process that got its pid later). */
export function journalOwnerAlive(r: Pick<JournalRecord, 'pid' | 'start'>): boolean {
  if (!processAlive(r.pid)) return false;
  const now = processStart(r.pid);
  return !(r.start && now && now !== r.start);
}

export class Journal {
  private writing: Promise<void> = Promise.resolve();
  private stacks: JournalStep[][] = [];
  private finishing?: JournalRecord['finish'];
  private removed = false;

  private constructor(
    readonly path: string,
    private readonly head: Omit<JournalRecord, 'steps' | 'finish'>,
  ) {}

  static async create(
    stateDir: string,
    head: { id: string; command: string; vms: string[]; host: boolean },
  ): Promise<Journal> {
    const dir = journalsDir(stateDir);
    await makeSharedDir(dir);
    const record = { ...head, pid: process.pid, start: processStart(process.pid), started: new Date().toISOString() };
    const journal = new Journal(join(dir, `${head.id}.json`), record);
    await journal.flush();
    return journal;
  }

  /** A stack of undo steps that lives in this journal (one per withUndo). */
  openStack(): JournalStep[] {
    const steps: JournalStep[] = [];
    this.stacks.push(steps);
    return steps;
  }

  closeStack(steps: JournalStep[]): Promise<void> {
    this.stacks = this.stacks.filter((s) => s !== steps);
    return this.flush();
  }

  /** Records what is left to finish if the process dies (a destroy under way), or clears it (undefined). */
  finish(what: JournalRecord['finish']): Promise<void> {
    this.finishing = what;
    return this.flush();
  }

  get pending(): boolean {
    return this.finishing !== undefined || this.stacks.some((s) => s.length > 0);
  }

  /** Writes the journal as it stands now; writes are queued, so the file always ends up as the latest state. */
  flush(): Promise<void> {
    const record: JournalRecord = {
      ...this.head,
      steps: this.stacks.flat(),
      ...(this.finishing && { finish: this.finishing }),
    };
    this.writing = this.writing.then(async () => {
      if (this.removed) return;
      const tmp = tempName(this.path);
      await writeFile(tmp, JSON.stringify(record, null, 1) + '\n', { mode: 0o664 });
      await rename(tmp, this.path); // whole or not at all: a kill mid-write never leaves half a journal
    });
    return this.writing;
  }

  /** The operation ended with nothing left to undo or finish: its journal goes. */
  async remove(): Promise<void> {
    await this.writing.catch(() => {});
    this.removed = true;
    await rm(this.path, { force: true });
  }
}

/** Every journal on the host, with whether its process still runs. Unreadable or half-written files are skipped. */
export async function readJournals(stateDir: string): Promise<(JournalRecord & { path: string; alive: boolean })[]> {
  const dir = journalsDir(stateDir);
  const names = await readdir(dir).catch(() => [] as string[]);
  const out: (JournalRecord & { path: string; alive: boolean })[] = [];
  for (const name of names.filter((n) => n.endsWith('.json'))) {
    const path = join(dir, name);
    try {
      const record = JSON.parse(await readFile(path, 'utf8')) as JournalRecord;
      out.push({ ...record, path, alive: journalOwnerAlive(record) });
    } catch {
      // removed meanwhile, or not a journal
    }
  }
  return out.sort((a, b) => a.started.localeCompare(b.started));
}

/** Rewrites a dead operation's journal with the steps still left (after a partial repair). */
export async function rewriteJournal(path: string, record: JournalRecord): Promise<void> {
  const tmp = tempName(path);
  await writeFile(tmp, JSON.stringify(record, null, 1) + '\n', { mode: 0o664 });
  await rename(tmp, path);
}

/** A journal being written goes to `ID.json.PID.tmp` first: one a killed process left is known by its dead pid. */
const tempName = (path: string) => `${path}.${process.pid}.tmp`;

/** Removes the half-written journals of processes that are gone. */
export async function removeDeadTempJournals(stateDir: string): Promise<void> {
  const dir = journalsDir(stateDir);
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    const pid = /\.json\.(\d+)\.tmp$/.exec(name)?.[1];
    if (pid && !processAlive(Number(pid))) await rm(join(dir, name), { force: true });
  }
}
