import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { VmsError, conflict, notFound } from '../errors.js';
import { errorSummary, type RunResult, type Runner } from '../runner.js';
import type { DomainType } from './domain-xml.js';

export type DomainState = 'running' | 'shut off' | 'paused' | 'in shutdown' | 'crashed' | 'pmsuspended' | 'idle' | string;

export const UNREACHABLE_HINT = 'is libvirtd running? `vms bootstrap` installs and starts it, `vms doctor` explains what is wrong';
const DENIED_HINT = 'libvirt lets the libvirt group in: `vms bootstrap` adds you to it, then log out and in again; `vms doctor` explains what is wrong';

/** Turns virsh's error text into a typed error. `subject` names the VM the command was about, if any. */
export function classifyVirshError(args: readonly string[], r: RunResult, uri: string, subject?: string): VmsError {
  const err = r.stderr;
  const line = errorSummary(r);
  // Only the connection to libvirtd itself: a domain failing to reach virtlogd or a network socket is not this.
  if (/failed to connect to the hypervisor/i.test(err)) {
    const reason = line.replace(/^failed to connect to the hypervisor(: )?/i, '') || 'no answer';
    // libvirtd is there but turned us away: its socket's permissions, or polkit.
    const denied = /permission denied|not authorized|authentication (unavailable|failed)/i.test(reason);
    return new VmsError('unreachable', `cannot reach libvirt at ${uri}: ${reason}`, denied ? DENIED_HINT : UNREACHABLE_HINT);
  }
  if (subject && /Domain not found|failed to get domain/i.test(err)) {
    return notFound(`no VM named '${subject}'`, '`vms list` shows the VMs');
  }
  if (/already exists|is already defined/i.test(err)) return conflict(line);
  if (/domain is not running|domain is already active|not valid: domain/i.test(err)) return conflict(line);
  return new VmsError('failed', `virsh ${args[0]} failed: ${line}`, 'run again with -v to see the commands run');
}

/** virsh's own quoting inside a `cmd1; cmd2` batch: within "…", backslash escapes; within '…' nothing does. */
function quoteForBatch(arg: string): string {
  if (/^[\w@%+=:,./-]+$/.test(arg)) return arg;
  return `"${arg.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

/** The private temp dirs of a vms process: `vms-PID-XXXXXX` in the temp dir. */
export const TEMP_PREFIX = 'vms-';

export class Virsh {
  constructor(
    private readonly runner: Runner,
    readonly uri: string,
    private readonly signal?: AbortSignal,
  ) {}

  /** The same connection without the abort signal: for clean-up work that must run after an interrupt. */
  uninterruptible(): Virsh {
    return new Virsh(this.runner, this.uri);
  }

  /** Runs a virsh command and returns its stdout, or throws a classified error. */
  async run(args: readonly string[], opts: { subject?: string; timeoutMs?: number } = {}): Promise<string> {
    const r = await this.runRaw(args, opts);
    if (r.exitCode !== 0) throw classifyVirshError(args, r, this.uri, opts.subject);
    return r.stdout;
  }

  runRaw(args: readonly string[], opts: { timeoutMs?: number } = {}): Promise<RunResult> {
    return this.runner.run('virsh', ['-c', this.uri, ...args], { timeoutMs: opts.timeoutMs, signal: this.signal });
  }

  /**
   * Several commands in ONE virsh process (a fixed number of processes however many VMs there are). Each command's
   * output is returned separately; a failing command yields undefined and does not stop the rest.
   */
  async batch(commands: readonly (readonly string[])[]): Promise<(string | undefined)[]> {
    if (commands.length === 0) return [];
    const marker = `@@vms-${process.pid}-${Date.now()}@@`;
    const script = commands.map((c, i) => `echo ${marker}${i}; ${c.map(quoteForBatch).join(' ')}`).join('; ') + `; echo ${marker}end`;
    const r = await this.runRaw([script]);
    if (!r.stdout.includes(`${marker}end`)) throw classifyVirshError(['batch'], r, this.uri);
    const parts = r.stdout.split(new RegExp(`^${marker}`, 'm')).slice(1);
    const out: (string | undefined)[] = new Array(commands.length).fill(undefined);
    for (const part of parts) {
      const nl = part.indexOf('\n');
      const index = Number(part.slice(0, nl));
      if (Number.isInteger(index)) out[index] = part.slice(nl + 1);
    }
    // virsh prints nothing on stdout for a failed command: an empty section means the command failed.
    return out.map((o) => (o === undefined || o.trim() === '' ? undefined : o));
  }

  async version(): Promise<string> {
    return this.run(['version']);
  }

  capabilities(): Promise<string> {
    return this.run(['capabilities']);
  }

  async names(): Promise<string[]> {
    return parseNames(await this.run(['list', '--all', '--name']));
  }

  /** True when a domain of that name is defined. */
  async exists(name: string): Promise<boolean> {
    const r = await this.runRaw(['domuuid', name]);
    if (r.exitCode === 0) return true;
    const err = classifyVirshError(['domuuid'], r, this.uri, name);
    if (err.code === 'notFound') return false;
    throw err;
  }

  dumpxml(name: string, inactive = false): Promise<string> {
    // --security-info: a definition that vms writes back must keep e.g. the display password.
    return this.run(['dumpxml', name, ...(inactive ? ['--inactive', '--security-info'] : [])], { subject: name });
  }

  /** What each disk target of the running (or else defined) domain reads from: target → file. */
  /** Target → source file of each disk, live (or, `inactive`, in the saved definition). */
  async diskSources(name: string, inactive = false): Promise<Map<string, string>> {
    const rows = (await this.run(['domblklist', name, ...(inactive ? ['--inactive'] : [])], { subject: name })).split('\n').slice(2);
    const pairs = rows.map((r) => /^\s*(\S+)\s+(.*\S)\s*$/.exec(r)).filter((m) => m !== null && m[2] !== '-');
    return new Map(pairs.map((m) => [m![1]!, m![2]!]));
  }

  async state(name: string): Promise<DomainState> {
    return (await this.run(['domstate', name], { subject: name })).trim();
  }

  /**
   * `virsh define` reads a file (stdin would be a socket pair, which /dev/stdin cannot open): a private temp file,
   * named after the process, so a repair after a kill removes what the killed one left (tempFilesOf).
   */
  async define(xml: string): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), `${TEMP_PREFIX}${process.pid}-`));
    try {
      await writeFile(join(dir, 'domain.xml'), xml);
      await this.run(['define', join(dir, 'domain.xml')]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async start(name: string): Promise<void> {
    await this.run(['start', name], { subject: name });
  }

  async shutdown(name: string): Promise<void> {
    await this.run(['shutdown', name], { subject: name });
  }

  async destroy(name: string): Promise<void> {
    await this.run(['destroy', name], { subject: name });
  }

  async undefine(name: string): Promise<void> {
    await this.run(['undefine', name, '--nvram', '--managed-save', '--snapshots-metadata', '--checkpoints-metadata'], { subject: name });
  }

  async domdisplay(name: string): Promise<string> {
    return (await this.run(['domdisplay', name], { subject: name })).trim();
  }

  /** True when a guest agent answers inside the VM (used to quiesce filesystems before a snapshot). */
  async agentAnswers(name: string): Promise<boolean> {
    const r = await this.runRaw(['qemu-agent-command', name, '{"execute":"guest-ping"}', '--timeout', '2']);
    return r.exitCode === 0;
  }

  /** External disk-only snapshot: the running VM continues on new overlay files; its current files become bases. */
  async snapshotToOverlays(name: string, overlays: { target: string; file: string }[], skip: string[], quiesce: boolean): Promise<void> {
    const specs = [
      ...overlays.flatMap((o) => ['--diskspec', `${o.target},snapshot=external,file=${o.file}`]),
      ...skip.flatMap((t) => ['--diskspec', `${t},snapshot=no`]),
    ];
    await this.run(
      ['snapshot-create-as', name, `vms-clone-${Date.now()}`, '--disk-only', '--atomic', '--no-metadata', ...(quiesce ? ['--quiesce'] : []), ...specs],
      { subject: name },
    );
  }

  /**
   * Copies a file that libvirtd can read but we may not (an NVRAM libvirt made for the qemu user, 0600) through a
   * transient dir pool on its directory, as virt-clone does. The copy is written by virsh, so it is ours.
   */
  async downloadFile(file: string, dest: string): Promise<void> {
    const pool = `vms-copy-${randomBytes(4).toString('hex')}`;
    await this.run(['pool-create-as', pool, 'dir', '--target', dirname(file)]);
    try {
      await this.run(['vol-download', '--pool', pool, basename(file), dest]);
    } finally {
      await this.uninterruptible().runRaw(['pool-destroy', pool]); // transient: destroyed is gone
    }
  }

  /** Merges the active overlay back into its base and pivots the running VM onto it (undo of snapshotToOverlays). */
  async commitActiveLayer(name: string, target: string): Promise<void> {
    await this.run(['blockcommit', name, target, '--active', '--pivot', '--shallow', '--wait'], { subject: name });
  }
}

/** Like virt-install: KVM when libvirt offers it for x86_64, otherwise TCG ("qemu"). */
export function pickDomainType(capabilitiesXml: string): DomainType {
  const guests = capabilitiesXml.split('<guest>').slice(1);
  const x86 = guests.find((g) => /<arch name=['"]x86_64['"]/.test(g));
  if (!x86) throw new VmsError('failed', 'libvirt offers no x86_64 guests', 'install QEMU (`vms bootstrap`)');
  return /<domain type=['"]kvm['"]/.test(x86) ? 'kvm' : 'qemu';
}

/** `virsh list --all --name`: one name a line (names may contain spaces), a blank line at the end. */
export const parseNames = (out: string) => out.split('\n').filter((l) => l.trim() !== '');
