import { createWriteStream, type WriteStream } from 'node:fs';
import { SerialSession } from '../../console/serial.js';
import { VmsError } from '../../errors.js';
import type { Context } from '../context.js';
import type { Profile } from './profiles.js';
import { waitUntilOff } from '../vm/vm.js';
import type { VmFiles } from '../vm/vm-files.js';

// Driving a guest over its serial console: log in, copy files, run the guest scripts of guest/README.md, power off or
// reboot. Everything the guest prints is appended to a transcript file in the VM's directory (and shown with -v).

/** The guest scripts are bash; the tiny test guests have only busybox sh. */
export const GUEST_SHELL = '"$(command -v bash || command -v sh)"';

export interface Transcript {
  path: string;
  write(text: string): void;
  close(): Promise<void>;
}

export function openTranscript(ctx: Context, path: string, title: string): Transcript {
  const stream: WriteStream = createWriteStream(path, { flags: 'a', mode: 0o600 });
  stream.write(`\n----- ${title}, ${new Date().toISOString()} -----\n`);
  return {
    path,
    write(text) {
      stream.write(text);
      ctx.progress.transcript?.(text);
    },
    close: () => new Promise<void>((resolve) => stream.end(resolve)),
  };
}

/** Connects to the console, logs in as root (archiso: no password) and makes the shell predictable. */
export async function loginAsRoot(
  ctx: Context,
  files: VmFiles,
  transcript: Transcript,
  password?: string,
): Promise<SerialSession> {
  const timeoutMs = ctx.config.bootTimeout.value * 1000;
  const session = await SerialSession.open(files.serialSocket, {
    timeoutMs: 60_000,
    signal: ctx.signal,
    tap: transcript.write,
  });
  try {
    await session.login({ user: 'root', password, timeoutMs });
    await session.prepare();
    return session;
  } catch (err) {
    session.close();
    throw err;
  }
}

/**
 * Copies files into one directory of the guest, each checked by sha256 there. All 0600 (settings.sh holds the
 * password hash): scripts are run through the shell, and install.sh sets the modes of what it installs.
 */
export async function pushFiles(session: SerialSession, dir: string, files: Record<string, string>): Promise<void> {
  await session.check(`mkdir -p '${dir}' && chmod 700 '${dir}'`, `cannot make ${dir} in the guest`);
  for (const [name, text] of Object.entries(files)) await session.pushFile(`${dir}/${name}`, text, 0o600);
}

/** Fails with the script's last lines when a guest script exits non-zero. */
export function scriptFailed(
  what: string,
  exitCode: number,
  output: string,
  transcript: Transcript,
  phase?: string,
): VmsError {
  const where = phase ? ` in phase '${phase}'` : '';
  return new VmsError(
    'failed',
    `${what} failed with exit status ${exitCode}${where}`,
    `the whole transcript is in ${transcript.path}`,
    output.trim().split('\n').slice(-15).join('\n'),
  );
}

const PROFILE_DIR = '/root/vms/profiles';
const PROFILE_TIMEOUT_MS = 30 * 60_000; // until the profile's first ::vms-phase line

/** Copies the chain (with the shared helpers and settings) and runs it, parents first. */
export async function runProfiles(
  ctx: Context,
  session: SerialSession,
  chain: Profile[],
  libs: ReadonlyMap<string, string>,
  settings: string,
  transcript: Transcript,
): Promise<void> {
  const files: Record<string, string> = { 'settings.sh': settings, ...Object.fromEntries(libs) };
  for (const p of chain) files[`${p.name}.sh`] = p.text;
  await ctx.progress.step(`Copying profile scripts (${chain.map((p) => p.name).join(' → ')})`, () =>
    pushFiles(session, PROFILE_DIR, files),
  );
  for (const p of chain) {
    await ctx.progress.step(`Applying profile ${p.name}`, async () => {
      const r = await session.runPhased(`cd ${PROFILE_DIR} && ${GUEST_SHELL} ${p.name}.sh ${PROFILE_DIR}/settings.sh`, {
        label: `profile ${p.name}`,
        firstTimeoutMs: PROFILE_TIMEOUT_MS,
      });
      if (r.exitCode !== 0) throw scriptFailed(`profile ${p.name}`, r.exitCode, r.output, transcript, r.phase);
    });
  }
  await session.check('sync', 'sync in the guest'); // what the profiles did survives a power cut from now on
}

/**
 * Powers off from inside (the guest flushes its disks itself); pulls the plug only when it will not go within
 * `waitMs` (a parameter for the tests).
 */
export async function powerOffFromGuest(
  ctx: Context,
  session: SerialSession,
  name: string,
  waitMs = 120_000,
): Promise<void> {
  await session.check('sync', 'sync in the guest');
  session.console.send('poweroff\r');
  const off = await waitUntilOff(ctx, name, waitMs);
  session.close();
  if (!off) {
    ctx.progress.note(`${name} did not power off within ${waitMs / 1000}s after sync: powering it off`);
    await ctx.virsh.destroy(name);
  }
}

/** Reboots from inside and waits for the login prompt, i.e. until the guest is up again. */
export async function rebootAndWait(ctx: Context, session: SerialSession): Promise<void> {
  session.console.send('reboot\r');
  await session.console.expect(/login: *$/, {
    timeoutMs: ctx.config.bootTimeout.value * 1000,
    signal: ctx.signal,
    poke: { text: '\r', everyMs: 5000 },
  });
}
