import { spawn } from 'node:child_process';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { VmsError } from '../../errors.js';
import { makeSharedDir } from '../host/shared-dir.js';

// Per-VM locks (and one host-wide lock for the bookkeeping of shared bases) as kernel flock(2) locks, held by a small
// `flock` process of util-linux that vms spawns and keeps a pipe to. The kernel drops a flock when its holder dies,
// so a vms killed in any way (SIGKILL included) never leaves a lock behind, and no pid file can go stale or be taken
// over by two processes at once. The holder runs in its own session: a Ctrl-C or a closed terminal that reaches vms
// does not reach it, so the lock lasts until vms itself lets go (after its clean-up) or dies.

/** The lock over which files are bases and who uses them: clone, destroy, disk attach and gc take it. */
export const HOST_LOCK = '~bases';

export interface LockRequest {
  /** VM names; taken in sorted order (with the host lock last), so two commands never wait on each other. */
  vms: string[];
  host?: boolean;
}

export interface Lease {
  release(): Promise<void>;
}

export interface Locks {
  /** Takes every lock of the request, waiting up to the lock's wait time for each; `busy(name)` when one stays held. */
  acquire(req: LockRequest): Promise<Lease>;
}

/** What `acquire` throws when a lock stays held: the caller says by whom (it knows the running operations). */
export class LockBusy extends VmsError {
  constructor(readonly lock: string) {
    super(
      'conflict',
      lock === HOST_LOCK ? 'another vms command is changing shared disks' : `${lock} is busy`,
      'wait for the other command to finish, then try again',
      undefined,
      'lock.busy',
    );
  }
}

/** The order locks are always taken in: VMs by name, then the host lock. */
export function lockOrder(req: LockRequest): string[] {
  const names = [...new Set(req.vms)].sort();
  return req.host ? [...names, HOST_LOCK] : names;
}

export const locksDir = (stateDir: string) => join(stateDir, '.locks');

/** The locks dir, group-writable and setgid like the state dir, so every user of the libvirt group can lock. */
async function ensureDir(dir: string): Promise<void> {
  await makeSharedDir(dir).catch((err) => {
    throw lockError(dir, err);
  });
}

const lockError = (path: string, err: unknown) =>
  new VmsError(
    'failed',
    `cannot lock ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    'vms locks VMs in its state dir: check that you may write there (`vms bootstrap` makes it for the libvirt group), or set VMS_STATE_DIR',
  );

/** Opens (creating if needed, readable by all) a lock file: flock(1) needs only to read it. */
async function touch(path: string): Promise<void> {
  try {
    await (await open(path, 'r')).close();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw lockError(path, err);
    try {
      await (await open(path, 'a', 0o664)).close();
    } catch (err) {
      throw lockError(path, err);
    }
  }
}

/** The flock(1) exit code that says "lock number i stayed held": 10 + i. */
const BUSY_BASE = 10;

export class FlockLocks implements Locks {
  constructor(
    private readonly stateDir: string,
    private readonly waitMs: number,
  ) {}

  async acquire(req: LockRequest): Promise<Lease> {
    const order = lockOrder(req);
    if (order.length === 0) return { release: async () => {} };
    const dir = locksDir(this.stateDir);
    await ensureDir(dir);
    const files = order.map((n) => join(dir, `${n}.lock`));
    for (const f of files) await touch(f);
    // flock -w W A flock -w W B … sh -c 'echo locked; exec cat': each level holds one lock while it runs the next.
    const wait = String(Math.max(0, this.waitMs) / 1000);
    const argv = files.flatMap((f, i) => ['flock', '-E', String(BUSY_BASE + i), '-w', wait, f]);
    argv.push('sh', '-c', 'echo locked; exec cat >/dev/null');
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['pipe', 'pipe', 'ignore'] });
    const exited = new Promise<number>((resolve) => {
      child.on('exit', (code) => resolve(code ?? 1));
      child.on('error', () => resolve(127));
    });
    const locked = await new Promise<boolean>((resolve) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('locked\n')) resolve(true);
      });
      void exited.then(() => resolve(false));
    });
    if (!locked) {
      const code = await exited;
      if (code === 127)
        throw new VmsError(
          'missingTool',
          'flock (util-linux) is not installed',
          'install util-linux: vms locks VMs with it',
        );
      const i = code - BUSY_BASE;
      if (i >= 0 && i < order.length) throw new LockBusy(order[i]!);
      throw new VmsError(
        'failed',
        `could not take the locks (flock exited ${code})`,
        'check that you may read the files in ' + dir,
      );
    }
    child.stdout.destroy();
    child.unref(); // the pipe to it keeps no event loop alive once vms is done
    (child.stdin as unknown as { unref?: () => void }).unref?.();
    return {
      release: async () => {
        child.ref(); // until it has let go: waiting on an unreferenced child would let Node exit mid-way
        child.stdin.end();
        await exited;
      },
    };
  }
}

/** No locking at all: for unit tests of the core and for `--print-xml`-like dry runs. */
export const noLocks: Locks = { acquire: async () => ({ release: async () => {} }) };
