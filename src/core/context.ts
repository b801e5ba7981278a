import { randomBytes } from 'node:crypto';
import { homedir, userInfo } from 'node:os';
import { resolve } from 'node:path';
import type { Config } from '../config.js';
import { QemuImg } from '../libvirt/qemu-img.js';
import { Virsh } from '../libvirt/virsh.js';
import type { Runner } from '../runner.js';
import type { Journal } from './ops/journal.js';
import { FlockLocks, type Locks } from './ops/locks.js';
import { Rollbacks } from './ops/undo.js';
import { silentProgress, type Progress } from './progress.js';

/**
 * Who asks and from where: the user a request is made for. The CLI's is its own process; a daemon serving several
 * users gives each request its caller's. The core reads these, never `process` or `os.userInfo()`.
 */
export interface Host {
  uid: number;
  gid: number;
  /** Supplementary group ids (whether the user is in the libvirt group yet). */
  groups: readonly number[];
  /** Login name. */
  user: string;
  home: string;
  /** Their environment: PATH, SUDO_USER, DISPLAY, LANG, … */
  env: Readonly<Record<string, string | undefined>>;
  /** Where relative paths they give start from. */
  cwd: string;
  /** Where the host's system files are looked up (/usr/lib/virtiofsd, the pacman cache); '/' unless a test says. */
  root?: string;
}

/** A path the caller gave, absolute: a relative one starts from the caller's directory, not this process's. */
export const callerPath = (ctx: Pick<Context, 'host'>, path: string) => resolve(ctx.host.cwd, path);

/** The Host of this process: what the CLI runs as. */
export function processHost(): Host {
  return {
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    groups: process.getgroups?.() ?? [],
    user: userInfo().username,
    home: homedir(),
    env: process.env,
    cwd: process.cwd(),
  };
}

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
  /** The locks the operation under way holds (set by withOperation with its journal). */
  heldLocks?: ReadonlySet<string>;
  /** The user this is done for, and their environment. */
  host: Host;
  /** The rollbacks under way in this caller's operations (what a forced exit would leave). */
  rollbacks: Rollbacks;
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
  /** Default: this process's (processHost). */
  host?: Host;
  rollbacks?: Rollbacks;
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
    host: opts.host ?? processHost(),
    rollbacks: opts.rollbacks ?? new Rollbacks(),
  };
}
