import { open, readFile, rm } from 'node:fs/promises';
import { conflict, VmsError } from '../../errors.js';

/** Whether a process lives. EPERM: it does, but is another user's (root's daemon, seen from a user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the lock file `path` (created exclusively, holding our pid) for `what`, and returns its release. A lock whose
 * process is gone (killed, machine restarted) is taken over; a live one is a conflict naming its pid.
 */
export async function takeLock(path: string, what: string): Promise<() => Promise<void>> {
  for (let attempt = 0; ; attempt++) {
    try {
      const file = await open(path, 'wx', 0o664);
      await file.writeFile(`${process.pid}\n`);
      await file.close();
      return () => rm(path, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new VmsError(
          'failed',
          `cannot create ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
          'check that you may write there',
        );
      }
    }
    const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
    // An empty file: its owner is between creating and writing it (or died there); a second look decides.
    if ((pid > 0 && processAlive(pid)) || (!pid && attempt === 0)) {
      if (pid) throw conflict(`${what} is already running (pid ${pid})`, `wait for it to finish; ${path} is its lock`);
      await new Promise((r) => setTimeout(r, 100));
      continue;
    }
    await rm(path, { force: true }); // its owner is gone
  }
}
