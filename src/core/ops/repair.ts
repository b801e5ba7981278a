import { readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEMP_PREFIX } from '../../libvirt/virsh.js';
import { processAlive } from '../host/file-lock.js';
import type { Context } from '../context.js';
import {
  readJournals,
  removeDeadTempJournals,
  rewriteJournal,
  type JournalRecord,
  type JournalStep,
} from './journal.js';
import { LockBusy } from './locks.js';
import { pollUntil } from './poll.js';
import { runUndoAction } from './undo-actions.js';

// Finishes what vms processes that were killed (SIGKILL, a crash, a reset) left half-done: for each journal whose
// process is gone, the undo steps it wrote down run newest first (or, for a destroy, what was left of it runs to the
// end). Run by every operation before it takes its locks, and by `vms repair`.

export interface RepairReport {
  operation: string;
  command: string;
  pid: number;
  vms: string[];
  started: string;
  /** Steps done now. */
  done: string[];
  /** Steps that failed (they stay in the journal for the next try), with the reason. */
  failed: string[];
  /** Steps only the dead process knew how to undo: said, not done. */
  unknown: string[];
  /** Another command is repairing it (or holds its VMs): left alone this time. */
  skipped?: boolean;
}

/** How long a repair waits for the tools a killed operation had started (a qemu-img copy, a virsh job) to end. */
const TOOLS_WAIT_MS = 120_000;

/** The processes the operation started that still run (marked with VMS_OPERATION=id by the runner). */
async function toolsStillRunning(id: string): Promise<number[]> {
  const marker = `VMS_OPERATION=${id}\0`;
  const pids: number[] = [];
  for (const entry of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(entry)) continue;
    const env = await readFile(`/proc/${entry}/environ`, 'latin1').catch(() => '');
    if (env.includes(marker)) pids.push(Number(entry));
  }
  return pids;
}

async function waitForTools(id: string, signal?: AbortSignal): Promise<void> {
  const ended = async () => (await toolsStillRunning(id)).length === 0;
  await pollUntil(ended, { timeoutMs: TOOLS_WAIT_MS, intervalMs: 250, signal });
}

/** The private temp dirs the killed process had (virsh.define's), by their name `vms-PID-…`. */
async function removeTempFiles(pid: number): Promise<void> {
  if (processAlive(pid)) return; // the pid went to another process since: its temp files are its own
  const prefix = `${TEMP_PREFIX}${pid}-`;
  for (const name of await readdir(tmpdir()).catch(() => [] as string[])) {
    if (name.startsWith(prefix)) await rm(join(tmpdir(), name), { recursive: true, force: true }).catch(() => {});
  }
}

async function repairOne(ctx: Context, j: JournalRecord & { path: string }): Promise<RepairReport> {
  const report: RepairReport = {
    operation: j.id,
    command: j.command,
    pid: j.pid,
    vms: j.vms,
    started: j.started,
    done: [],
    failed: [],
    unknown: [],
  };
  let lease;
  try {
    lease = await ctx.locks.acquire({ vms: j.vms, host: j.host });
  } catch (err) {
    if (err instanceof LockBusy) return { ...report, skipped: true };
    throw err;
  }
  try {
    // Re-read under the locks: another vms may have repaired it meanwhile.
    const now = (await readJournals(ctx.config.stateDir.value)).find((r) => r.path === j.path);
    if (!now || now.alive) return { ...report, skipped: !now ? false : true };
    await waitForTools(now.id, ctx.signal);
    let finished = true;
    if (now.finish) {
      ctx.progress.note(`finishing what an interrupted vms ${now.command} (pid ${now.pid}) left: ${now.finish.what}`);
      for (const action of now.finish.actions) {
        try {
          await runUndoAction(ctx, action);
        } catch (err) {
          report.failed.push(`${now.finish.what}: ${(err as Error).message}`);
          finished = false;
          break;
        }
      }
      if (finished) report.done.push(now.finish.what);
    }
    const left: JournalStep[] = [];
    if (now.steps.length)
      ctx.progress.note(`undoing what an interrupted vms ${now.command} (pid ${now.pid}) left half-made`);
    for (const step of [...now.steps].reverse()) {
      if (!step.action) {
        report.unknown.push(step.what);
        continue;
      }
      try {
        await runUndoAction(ctx, step.action);
        report.done.push(step.what);
      } catch (err) {
        report.failed.push(`${step.what}: ${(err as Error).message}`);
        left.unshift(step);
      }
    }
    await removeTempFiles(now.pid);
    if (report.failed.length)
      await rewriteJournal(now.path, { ...now, steps: left, finish: finished ? undefined : now.finish });
    else await rm(now.path, { force: true });
    return report;
  } finally {
    await lease.release();
  }
}

/**
 * Repairs every operation whose process is gone. Returns a report per operation; one that cannot be finished keeps
 * its journal (with the steps left) for the next try.
 */
export async function repairInterrupted(ctx: Context): Promise<RepairReport[]> {
  await removeDeadTempJournals(ctx.config.stateDir.value);
  const dead = (await readJournals(ctx.config.stateDir.value)).filter((j) => !j.alive);
  const reports: RepairReport[] = [];
  for (const j of dead) reports.push(await repairOne(ctx, j));
  return reports;
}

/** What killed operations left, without changing anything (for `vms doctor` and `vms repair --dry-run`). */
export async function interruptedOperations(ctx: Context): Promise<(JournalRecord & { path: string })[]> {
  return (await readJournals(ctx.config.stateDir.value)).filter((j) => !j.alive);
}
