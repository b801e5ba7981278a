import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { SerialSession } from '../../src/console/serial.js';
import { BaseWatch, fullCheck } from './invariants.js';

// The real-libvirt test bed: the qemu:///system libvirtd that test/setup.sh started, the tiny guest it built, and
// directories of the tests' own so nothing of a user's is touched.

export const ROOT = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');
const CACHE = process.env.VMS_TEST_CACHE ?? '/var/cache/vms-test';
export const GUEST = {
  kernel: join(CACHE, 'tiny/vmlinuz'),
  initrd: join(CACHE, 'tiny/initrd.img'),
  iso: join(CACHE, 'tiny/tiny.iso'),
  hybridIso: join(CACHE, 'tiny/tiny-hybrid.iso'),
  /** Looks like the Arch ISO to vms: archiso layout, label and date; its live system logs in like archiso. */
  archIso: join(CACHE, 'archiso/archlinux-test.iso'),
};
for (const f of Object.values(GUEST)) {
  if (!existsSync(f)) throw new Error(`test guest file ${f} is missing: run test/setup.sh first (as root)`);
}

export const BASE_DIR = '/var/lib/vms-test';
export const URI = 'qemu:///system';

/** A fresh set of directories and env for one test file; `cleanup()` removes its VMs and files. */
export function testbed(tag: string) {
  const id = `${tag}-${randomBytes(2).toString('hex')}`;
  const dir = join(BASE_DIR, id);
  const env: Record<string, string> = {
    VMS_IMAGES_DIR: join(dir, 'images'),
    VMS_STATE_DIR: join(dir, 'vms'),
    VMS_ISO_DIR: join(dir, 'iso'),
    VMS_CACHE_DIR: join(dir, 'cache'),
    VMS_CONFIG: join(dir, 'config.json'),
    LIBVIRT_DEFAULT_URI: URI,
  };
  for (const d of [env.VMS_IMAGES_DIR!, env.VMS_STATE_DIR!, env.VMS_ISO_DIR!])
    mkdirSync(d, { recursive: true, mode: 0o755 });

  const invariantEnv = { id, imagesDir: env.VMS_IMAGES_DIR!, stateDir: env.VMS_STATE_DIR! };
  const bases = new BaseWatch();
  /** Every rule of test/helpers/invariants.ts; `foreign`: files the test put into the images dir itself. */
  const invariants = (foreign: string[] = []) => fullCheck(invariantEnv, bases, foreign);

  /** VM names carry the bed's id so a crashed run's leftovers are recognisable and never clash. */
  const name = (n: string) => `${id}-${n}`;

  /** The bundle where any user can read it (a clone of the repo may be in root's home), for `as`. */
  function sharedBundle(): string {
    const copy = join(dir, 'vms.cjs');
    if (!existsSync(copy)) copyFileSync(join(ROOT, 'dist/vms.cjs'), copy);
    return copy;
  }

  /**
   * Runs the built CLI (dist/vms.cjs); never throws for a non-zero exit. `as`: run it as that user, with their
   * groups (setpriv --init-groups: node's own uid/gid options would drop the supplementary groups, libvirt among them),
   * or with none (`staleSession`: a login from before the user joined them).
   */
  function vms(
    args: string[],
    opts: {
      /** Over the bed's env (NO_COLOR=1 among it); undefined unsets a variable. */
      env?: Record<string, string | undefined>;
      timeoutMs?: number;
      as?: string;
      staleSession?: boolean;
      skipInvariants?: boolean;
    } = {},
  ) {
    const argv = opts.as
      ? [
          'setpriv',
          `--reuid=${opts.as}`,
          `--regid=${opts.as}`,
          opts.staleSession ? '--clear-groups' : '--init-groups',
          process.execPath,
          sharedBundle(),
          ...args,
        ]
      : [process.execPath, join(ROOT, 'dist/vms.cjs'), ...args];
    return new Promise<{ code: number; stdout: string; stderr: string; json: any }>((resolve, reject) => {
      execFile(
        argv[0]!,
        argv.slice(1),
        {
          env: { ...process.env, ...env, NO_COLOR: '1', ...opts.env },
          timeout: opts.timeoutMs ?? 180_000,
          maxBuffer: 16 << 20,
        },
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
          let json: any;
          try {
            json = JSON.parse(stdout);
          } catch {
            json = undefined;
          }
          // After every command: a frozen base never changes and stays read-only (test/helpers/invariants.ts).
          const problems = opts.skipInvariants ? [] : bases.check(invariantEnv);
          if (problems.length) reject(new Error(`after vms ${args.join(' ')}: ${problems.join('; ')}`));
          else resolve({ code, stdout, stderr, json });
        },
      );
    });
  }

  /** Starts the CLI without waiting (for interrupt tests). */
  function spawnVms(args: string[], extraEnv: Record<string, string> = {}): ChildProcess {
    return spawn(process.execPath, [join(ROOT, 'dist/vms.cjs'), ...args], {
      env: { ...process.env, ...env, NO_COLOR: '1', ...extraEnv },
    });
  }

  /** The CLI on a real pty (script(1)) of 100 columns, as on a user's terminal: argv for spawning it. */
  const terminalArgv = (args: string[]) => [
    '-qfec',
    `stty cols 100 rows 30; ${process.execPath} ${join(ROOT, 'dist/vms.cjs')} ${args.join(' ')}`,
    '/dev/null',
  ];
  const terminalEnv = (extra: Record<string, string | undefined> = {}) => ({
    ...process.env,
    ...env,
    NO_COLOR: '1',
    ...extra,
  });

  /** Runs the CLI on a pty to the end, typing `input`; returns its exit code and what the terminal showed. */
  function onTerminal(args: string[], input = '', extraEnv: Record<string, string | undefined> = {}) {
    const r = spawnSync('script', terminalArgv(args), { env: terminalEnv(extraEnv), input, encoding: 'utf8' });
    return { code: r.status, out: r.stdout };
  }

  /** Starts the CLI on a pty without waiting (an interactive session). */
  const spawnOnTerminal = (args: string[]) => spawn('script', terminalArgv(args), { env: terminalEnv() });

  /** `vms create --bare` of a tiny guest with direct kernel boot; extra args are appended. */
  async function createTiny(n: string, extra: string[] = [], opts: { graphics?: boolean } = {}) {
    const r = await vms([
      'create',
      n,
      '--bare',
      '--json',
      '--memory',
      '256M',
      '--cpus',
      '1',
      '--disk',
      '64M',
      '--network',
      'none',
      ...(opts.graphics ? [] : ['--no-graphics']),
      '--kernel',
      GUEST.kernel,
      '--initrd',
      GUEST.initrd,
      '--cmdline',
      'console=ttyS0',
      ...extra,
    ]);
    if (r.code !== 0) throw new Error(`create ${n} failed (${r.code}): ${r.stdout}${r.stderr}`);
    return r.json;
  }

  /** Logs into a running VM's serial console as root (the tiny guest has no password; an installed one has). */
  async function shell(n: string, password?: string): Promise<SerialSession> {
    const s = await SerialSession.open(join(env.VMS_STATE_DIR!, n, 'serial.sock'), { timeoutMs: 10_000 });
    await s.login({ user: 'root', password, timeoutMs: 120_000 });
    return s;
  }

  /** Runs one command in the guest and returns its output; fails the test on a non-zero status. */
  async function guest(n: string, command: string, password?: string): Promise<string> {
    const s = await shell(n, password);
    try {
      const r = await s.run(command);
      if (r.exitCode !== 0) throw new Error(`in ${n}: '${command}' exited ${r.exitCode}: ${r.output}`);
      return r.output;
    } finally {
      s.close();
    }
  }

  function virsh(...args: string[]): string {
    return execFileSync('virsh', ['-c', URI, ...args], { encoding: 'utf8' });
  }

  function domains(): string[] {
    return virsh('list', '--all', '--name')
      .split('\n')
      .map((s) => s.trim())
      .filter((s) => s.startsWith(id));
  }

  /**
   * What a refused command must leave as it was: the bed's VMs (their saved definitions, metadata included, and
   * their states) and the names and modes of every file and directory in its images and state dirs (lock files
   * aside, and the journal dir itself). A running guest writes into its disk and serial log, so contents are not compared.
   */
  function snapshotWorld() {
    const vms = domains()
      .sort()
      .map((d) => ({ name: d, state: virsh('domstate', d).trim(), saved: virsh('dumpxml', d, '--inactive') }));
    const files = [env.VMS_IMAGES_DIR!, env.VMS_STATE_DIR!].flatMap((root) =>
      existsSync(root)
        ? readdirSync(root, { recursive: true })
            .map(String)
            .filter((f) => !f.startsWith('.locks') && f !== '.operations') // made on first use; journals count
            .sort()
            .map((f) => `${join(root, f)} ${(lstatSync(join(root, f)).mode & 0o7777).toString(8)}`)
        : [],
    );
    return { vms, files };
  }

  /** Runs a command that must be refused, and fails the test when anything of snapshotWorld changed. */
  async function refused(args: string[], opts: Parameters<typeof vms>[1] = {}) {
    const before = snapshotWorld();
    const r = await vms(args, opts);
    assert.deepEqual(snapshotWorld(), before, `vms ${args.join(' ')} (exit ${r.code}) changed something: ${r.stderr}`);
    return r;
  }

  function cleanup(): void {
    for (const d of domains()) {
      try {
        virsh('destroy', d);
      } catch {
        // not running
      }
      try {
        virsh('undefine', d, '--nvram', '--snapshots-metadata');
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }

  return {
    id,
    dir,
    env,
    name,
    invariants,
    vms,
    refused,
    snapshotWorld,
    spawnVms,
    onTerminal,
    spawnOnTerminal,
    createTiny,
    shell,
    guest,
    virsh,
    domains,
    cleanup,
  };
}

export type Testbed = ReturnType<typeof testbed>;
