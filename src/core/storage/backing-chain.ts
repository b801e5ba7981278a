import { isInterrupt } from '../../errors.js';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Context } from '../context.js';

// The backing chains under VMs' disks, read with qemu-img for src/core/files-in-use.ts: the whole chain in one
// process, and level by level when that fails, to get as far as the chain goes and say where it breaks.

/** Why a chain could not be read to its end; `incomplete`: files below it may be in use unseen (see UnreadableVm). */
export interface ChainProblem {
  reason: string;
  incomplete: boolean;
}

/** How many qemu-img processes read chains at once: a host with many VMs is read in a fraction of the time. */
const PARALLEL_READS = 6;

/** Reads backing chains with qemu-img, each disk once per call, a few at a time. */
export class ChainReader {
  private readonly cache = new Map<string, Promise<{ files: string[]; problem?: ChainProblem }>>();
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly ctx: Context) {}

  /** The backing files under a disk, nearest first; on a problem, those read up to it. */
  read(disk: string) {
    let chain = this.cache.get(disk);
    if (!chain) this.cache.set(disk, (chain = this.limited(() => this.readUncached(disk))));
    return chain;
  }

  private async limited<T>(fn: () => Promise<T>): Promise<T> {
    if (this.running >= PARALLEL_READS) await new Promise<void>((go) => this.waiting.push(go));
    this.running++;
    try {
      return await fn();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }

  private async readUncached(disk: string): Promise<{ files: string[]; problem?: ChainProblem }> {
    if (!existsSync(disk)) return { files: [], problem: { reason: `its disk ${disk} is missing`, incomplete: false } };
    try {
      return { files: (await this.ctx.qemuImg.chain(disk)).slice(1).map((i) => i.filename) };
    } catch (err) {
      if (isInterrupt(err)) throw err; // stopped, not broken
      return this.walk(disk); // one level at a time, to get as far as the chain goes and say where it breaks
    }
  }

  private async walk(disk: string): Promise<{ files: string[]; problem?: ChainProblem }> {
    const files: string[] = [];
    for (let file = disk, format: string | undefined; ;) {
      let info;
      try {
        info = await this.ctx.qemuImg.info(file, format);
      } catch (err) {
        if (isInterrupt(err)) throw err;
        return {
          files,
          problem: { reason: `cannot read the disk chain under ${disk}: ${(err as Error).message}`, incomplete: true },
        };
      }
      const next = info['full-backing-filename'] ?? info['backing-filename'];
      if (!next) return { files }; // read to the end after all (the whole-chain read failed for another reason)
      const backing = resolve(dirname(file), next);
      if (files.includes(backing) || backing === disk)
        return { files, problem: { reason: `the disk chain under ${disk} loops at ${backing}`, incomplete: false } };
      files.push(backing);
      if (!existsSync(backing))
        return { files, problem: { reason: `backing file ${backing} of ${disk} is missing`, incomplete: false } };
      file = backing;
      format = info['backing-filename-format']; // as QEMU opens it: a garbled base must not pass for a raw image
    }
  }
}
