// Shared by the mount tests of a running VM (not a test file itself): a VM whose serial console is played by a fake
// guest that answers the shell commands `vms mount` / `vms umount` type, in the order a test lists them, and the
// virsh calls those commands make.
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MountOptions } from '../../src/core/devices/mount.js';
import { VmsError } from '../../src/errors.js';
import { parseDomainXml, readMetadata } from '../../src/libvirt/domain-parse.js';
import { hasSharedMemory, virtiofsShares, type FsShare } from '../../src/libvirt/fs-xml.js';
import { renderMetadata } from '../../src/libvirt/metadata.js';
import { begin, end, startGuest, type Guest } from './fake-guest.js';
import type { Expected } from './fake-runner.js';
import { contextOn, URI, virshCall } from './virsh-fake.js';
import { listedLater, recordingProgress } from './vm-fake.js';

export const VM = 'm';

/** One command the guest expects next, and how it answers (default: no output, exit status 0). */
export interface GuestStep {
  command: string;
  output?: string;
  status?: number;
}

/** The shell setup SerialSession.prepare runs after each login; answered, and not listed in `ran`. */
const PREPARE = /^PS1=/;

/** A guest on the VM's console that answers the expected commands in order and refuses any other (exit 127). */
export class ScriptedGuest {
  /** The marked commands the shell ran, in order (the prompt setup left out). */
  readonly ran: string[] = [];
  /** The lines typed that are not marked commands (the switch to bash, poweroff). */
  readonly typed: string[] = [];
  private queue: GuestStep[] = [];
  private mismatch?: string;
  private guest?: Guest;

  constructor(
    readonly path: string,
    private readonly password?: string,
    /** Where the commands go too, among the virsh calls (to check the order of undo steps). */
    private readonly log?: string[],
  ) {}

  expect(...steps: GuestStep[]): void {
    this.queue = steps;
  }

  async boot(): Promise<void> {
    this.guest ??= await startGuest({
      path: this.path,
      password: this.password,
      shell: (command, id, write) => {
        const [output, status] = this.answer(command);
        setTimeout(() => write(`${begin(id)}${output}${end(id, status)}`), 1);
      },
      raw: (line) => {
        this.typed.push(line);
        return true;
      },
    });
  }

  private answer(command: string): [string, number] {
    if (PREPARE.test(command)) return ['', 0];
    this.ran.push(command);
    this.log?.push(`guest ${command}`);
    const next = this.queue.shift();
    if (next?.command === command) return [next.output ?? '', next.status ?? 0];
    this.mismatch ??= `unexpected guest command: ${command}\nexpected: ${next?.command ?? '(none)'}`;
    return ['sh: unexpected\r\n', 127];
  }

  /** Every command was the expected one, and every expected command ran. */
  done(): void {
    assert.equal(this.mismatch, undefined);
    assert.deepEqual(
      this.queue.map((s) => s.command),
      [],
      'expected guest commands not run',
    );
  }

  /** vms closed its console session (the fake guest sees the client gone a moment later). */
  async disconnected(): Promise<void> {
    for (let i = 0; i < 100 && this.connected() > 0; i++) await sleep(10);
    assert.equal(this.connected(), 0, 'the console session was left open');
  }

  private connected = () => this.guest?.connections() ?? 0;

  async stop(): Promise<void> {
    await this.guest?.stop();
  }
}

const guests: ScriptedGuest[] = [];
afterEach(async () => {
  for (const g of guests.splice(0)) await g.stop();
});

export interface DomainShape {
  sharedMemory?: boolean;
  shares?: readonly FsShare[];
  /** Tags vms' metadata keeps read-only. */
  kept?: string[];
  /** A unix-socket serial console (default true). */
  serial?: boolean;
}

const SHARED_MEMORY = "<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>";
const shareXml = (s: FsShare) =>
  `<filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/><source dir='${s.source}'/>` +
  `<target dir='${s.tag}'/>${s.readonly ? '<readonly/>' : ''}</filesystem>`;

/**
 * A VM whose console (its serial.sock in its directory) is a ScriptedGuest, logged into with root's password from
 * the VM's root-password file; progress steps recorded; virsh calls listed with `expect`.
 */
export function mountVm(opts: { password?: string; passwordFile?: string } = {}) {
  const runner = listedLater();
  /** Virsh verbs and guest commands, in the order they came. */
  const log: string[] = [];
  const { ctx, dir } = contextOn({
    run: (cmd, args, o) => (log.push(`${cmd} ${args[2]}`), runner.runner.run(cmd, args, o)),
    interactive: (cmd, args) => runner.runner.interactive(cmd, args),
  });
  const vmDir = join(dir, 'state', VM);
  mkdirSync(vmDir, { recursive: true });
  const password = opts.password ?? 'pw';
  writeFileSync(join(vmDir, 'root-password'), opts.passwordFile ?? `${password}\n`);
  const guest = new ScriptedGuest(join(vmDir, 'serial.sock'), password, log);
  guests.push(guest);
  const rec = recordingProgress();
  ctx.progress = rec.progress;
  const xml = (shape: DomainShape = {}) => {
    const metadata = shape.kept
      ? `<metadata>${renderMetadata({ bases: [], made: [], readonlyShares: shape.kept })}</metadata>`
      : '';
    const serial =
      shape.serial === false
        ? ''
        : `<serial type='unix'><source mode='bind' path='${guest.path}'/><target port='0'/></serial>`;
    return (
      `<domain type='qemu'><name>${VM}</name>${metadata}<memory unit='KiB'>262144</memory>` +
      `${shape.sharedMemory ? SHARED_MEMORY : ''}<devices>${(shape.shares ?? []).map(shareXml).join('')}` +
      `${serial}</devices></domain>`
    );
  };
  /** loadVm's two calls, then (running) the live definition runningDomain reads. */
  const loads = (saved: DomainShape, state: string, live?: DomainShape) => [
    virshCall(['dumpxml', VM, '--inactive', '--security-info'], xml(saved)),
    virshCall(['domstate', VM], `${state}\n`),
    ...(live ? [virshCall(['dumpxml', VM], xml(live))] : []),
  ];
  /** Every virsh call and guest command was the expected one, all were made; the console and transcript closed. */
  const done = async () => {
    runner.done();
    guest.done();
    await guest.disconnected();
    await transcriptClosed(vmDir);
  };
  return { ctx, runner, guest, vmDir, xml, loads, done, log, expect: runner.expect, ...rec };
}

/** Whether this process has `path` open (Linux: its links in /proc/self/fd). */
const isOpen = (path: string) =>
  readdirSync('/proc/self/fd').some((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false; // closed meanwhile (the directory's own fd, say)
    }
  });

/** vms closed the console transcript (apply.log): the file is not open any more a moment later. */
async function transcriptClosed(vmDir: string): Promise<void> {
  const log = join(vmDir, 'apply.log');
  for (let i = 0; i < 100 && isOpen(log); i++) await sleep(10);
  assert.equal(isOpen(log), false, 'the transcript was left open');
}

/** A VM as mountVm makes it, its guest running. */
export async function bootedVm(opts: Parameters<typeof mountVm>[0] = {}) {
  const vm = mountVm(opts);
  await vm.guest.boot();
  return vm;
}

/** vms mount's options for VM m, /mnt/s in the guest. */
export const mountOptions = (hostDir: string, o: Partial<MountOptions> = {}): MountOptions => ({
  name: VM,
  hostDir,
  guestDir: '/mnt/s',
  readonly: false,
  temp: false,
  force: false,
  restart: false,
  ...o,
});

/** An assert.rejects check: a VmsError with this code and message, and these other fields (hint, reason …). */
export const failsWith =
  (code: string, message: string, extra: Partial<Record<'hint' | 'reason' | 'details', string>> = {}) =>
  (err: unknown) => {
    assert.ok(err instanceof VmsError, String(err));
    const picked = Object.fromEntries(Object.keys(extra).map((k) => [k, err[k as keyof typeof extra]]));
    assert.deepEqual({ code: err.code, message: err.message, ...picked }, { code, message, ...extra });
    return true;
  };

/** A `virsh define`: the XML it defines goes into `into` (the temp file exists during the call). */
export const defineCall = (into: string[], stderr = ''): Expected => ({
  cmd: 'virsh',
  args: (args) => {
    if (args.length !== 4 || args[0] !== '-c' || args[1] !== URI || args[2] !== 'define') return false;
    into.push(readFileSync(args[3]!, 'utf8'));
    return true;
  },
  result: { exitCode: stderr ? 1 : 0, stderr },
});

/** What a defined XML says about shares: the shares, shared memory, the tags kept read-only, whether it has metadata. */
export async function definitionOf(xml: string) {
  const d = await parseDomainXml(xml);
  return {
    shares: virtiofsShares(d),
    sharedMemory: hasSharedMemory(d),
    kept: readMetadata(d).readonlyShares,
    metadata: d.metadata !== undefined,
  };
}

/** `virsh attach-device|detach-device m FILE --live`: the device XML it reads goes into `into`. */
export const deviceCall = (verb: 'attach-device' | 'detach-device', into: string[], stderr = ''): Expected => ({
  cmd: 'virsh',
  args: (args) => {
    const [c, uri, v, name, file, ...flags] = args;
    if (c !== '-c' || uri !== URI || v !== verb || name !== VM || flags.join(' ') !== '--live') return false;
    into.push(readFileSync(file!, 'utf8'));
    return true;
  },
  result: { exitCode: stderr ? 1 : 0, stderr },
});

/** The device XML libvirt is given for a share. */
export const filesystemDevice = (s: FsShare) =>
  `<filesystem type="mount" accessmode="passthrough">\n  <driver type="virtiofs"/>\n  <source dir="${s.source}"/>\n` +
  `  <target dir="${s.tag}"/>\n${s.readonly ? '  <readonly/>\n' : ''}</filesystem>`;

// The commands vms types into the guest, spelled out (tag T at /mnt/s).

export const stateCommand = (t: string) =>
  `if grep -qs '^${t} /mnt/s virtiofs ' /proc/mounts; then echo mounted; elif [ -e /mnt/s ] && [ ! -d /mnt/s ]; ` +
  `then echo notdir; elif [ -n "$(ls -A /mnt/s 2>/dev/null)" ]; then echo nonempty; else echo empty; fi`;
export const mountCmd = (t: string, ro: boolean) =>
  `grep -qs '^${t} /mnt/s virtiofs ' /proc/mounts || { mkdir -p /mnt/s && mount -t virtiofs${ro ? ' -o ro' : ''} ${t} /mnt/s; }`;
export const unmountCmd = (t: string) => `! grep -qs '^${t} /mnt/s virtiofs ' /proc/mounts || umount /mnt/s`;
const FSTAB_TAIL =
  '> /etc/fstab.vms-new && cat /etc/fstab.vms-new > /etc/fstab && rm -f /etc/fstab.vms-new && ' +
  '{ [ ! -d /run/systemd/system ] || systemctl daemon-reload; }';
export const fstabLineOf = (t: string, ro: boolean) => `${t} /mnt/s virtiofs defaults${ro ? ',ro' : ''},nofail 0 0`;
/** Rewrites /etc/fstab with `line` for the tag, or without the tag's line. */
export const fstabCmd = (t: string, line?: string) =>
  `touch /etc/fstab && { grep -v '^${t}[[:space:]]' /etc/fstab; ${line ? `echo '${line}'; ` : ''}true; } ${FSTAB_TAIL}`;
