import { randomBytes } from 'node:crypto';
import type { Config } from '../config.js';
import { QemuImg } from '../libvirt/qemu-img.js';
import { Virsh } from '../libvirt/virsh.js';
import type { Runner } from '../runner.js';
import type { Journal } from './ops/journal.js';
import { FlockLocks, type Locks } from './ops/locks.js';
import { silentProgress, type Progress } from './progress.js';

/** Everything a core operation needs from the outside world; no printing, prompting or exiting in the core. */
export interface Context {
  config: Config;
  runner: Runner;
  virsh: Virsh;
  qemuImg: QemuImg;
  progress: Progress;
  signal?: AbortSignal;
  /** Per-VM and host locks (src/core/host/locks.ts). */
  locks: Locks;
  /** Names this operation: its journal, and the VMS_OPERATION the runner gives the tools it starts. */
  operationId: string;
  /** The journal of the operation under way (set by withOperation), where undo steps are written down. */
  journal?: Journal;
}

/** How long a command waits for a VM another command holds before it says "busy". */
export const DEFAULT_LOCK_WAIT_MS = 5000;

export const newOperationId = () => `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;

export function createContext(opts: {
  config: Config;
  runner: Runner;
  progress?: Progress;
  signal?: AbortSignal;
  locks?: Locks;
  lockWaitMs?: number;
  operationId?: string;
}): Context {
  return {
    config: opts.config,
    runner: opts.runner,
    virsh: new Virsh(opts.runner, opts.config.uri.value, opts.signal),
    qemuImg: new QemuImg(opts.runner, opts.signal),
    progress: opts.progress ?? silentProgress,
    signal: opts.signal,
    locks: opts.locks ?? new FlockLocks(opts.config.stateDir.value, opts.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS),
    operationId: opts.operationId ?? newOperationId(),
  };
}
