import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { VmsError, isInterrupt } from '../errors.js';
import type { RunResult, Runner } from '../runner.js';
import type { DomainType } from './domain-xml.js';
import { parseSnapshotXml, snapshotCreateArgs, type SnapshotFacts, type SnapshotRequest } from './snapshot-xml.js';
import { readPool, type PoolInfo } from './storage-pool.js';
import { parseDomstats, parseMemoryStats, parseNames, parseNetInfo, type NetInfo } from './virsh-output.js';
import { virshCommand } from './virsh-commands.js';
import { classifyVirshError } from './virsh-errors.js';

export { parseNames } from './virsh-output.js';
export { classifyVirshError, UNREACHABLE_HINT } from './virsh-errors.js';
export { SYSTEM_URI, defaultNetworkLines, networkLineCheck, systemVirshLine, virshCommand } from './virsh-commands.js';

export type DomainState =
  'running' | 'shut off' | 'paused' | 'in shutdown' | 'crashed' | 'pmsuspended' | 'idle' | string;

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
    const script =
      commands.map((c, i) => `echo ${marker}${i}; ${c.map(quoteForBatch).join(' ')}`).join('; ') +
      `; echo ${marker}end`;
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

  /** The libvirt daemon's version (`virsh version --daemon`), e.g. "9.0.0". */
  async daemonVersion(): Promise<string | undefined> {
    return /daemon:\s*(\S+)/.exec(await this.run(['version', '--daemon']))?.[1];
  }

  /** True when libvirtd answers within `timeoutMs` (`virsh version`); false for any failure. */
  async answers(timeoutMs: number): Promise<boolean> {
    return this.run(['version'], { timeoutMs }).then(
      () => true,
      () => false,
    );
  }

  capabilities(): Promise<string> {
    return this.run(['capabilities']);
  }

  /** What QEMU and libvirt offer a q35 x86_64 guest (firmware, devices): `virsh domcapabilities`. */
  domainCapabilities(): Promise<string> {
    return this.run(['domcapabilities', '--machine', 'q35', '--arch', 'x86_64']);
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
    return this.run(virshCommand.dumpxml(name, { inactive, securityInfo: inactive }), { subject: name });
  }

  /** What each disk target of the running (or else defined) domain reads from: target → file. */
  /** Target → source file of each disk, live (or, `inactive`, in the saved definition). */
  async diskSources(name: string, inactive = false): Promise<Map<string, string>> {
    const rows = (await this.run(['domblklist', name, ...(inactive ? ['--inactive'] : [])], { subject: name }))
      .split('\n')
      .slice(2);
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

  /** `virsh VERB NAME`, a change of the domain's state that prints nothing worth keeping. */
  private async change(verb: 'start' | 'shutdown' | 'destroy' | 'reset' | 'suspend' | 'resume', name: string) {
    await this.run([verb, name], { subject: name });
  }

  start = (name: string) => this.change('start', name);
  shutdown = (name: string) => this.change('shutdown', name);
  destroy = (name: string) => this.change('destroy', name);
  /** Hard reset, like the reset button. */
  reset = (name: string) => this.change('reset', name);
  suspend = (name: string) => this.change('suspend', name);
  resume = (name: string) => this.change('resume', name);

  async undefine(name: string): Promise<void> {
    await this.run(['undefine', name, '--nvram', '--managed-save', '--snapshots-metadata', '--checkpoints-metadata'], {
      subject: name,
    });
  }

  async domdisplay(name: string): Promise<string> {
    return (await this.run(['domdisplay', name], { subject: name })).trim();
  }

  async rename(name: string, to: string): Promise<void> {
    await this.run(['domrename', name, to], { subject: name });
  }

  /** The running VM's memory (the balloon's target), in bytes of whole KiB. */
  async setLiveMemory(name: string, bytes: number): Promise<void> {
    await this.run(['setmem', name, String(bytes / 1024), '--live'], { subject: name });
  }

  /** The running VM's balloon statistics (`actual`, `rss`, … in KiB). */
  async memoryStats(name: string): Promise<Map<string, number>> {
    return parseMemoryStats(await this.run(['dommemstat', name], { subject: name }));
  }

  /** Hot-plugs (or unplugs) vCPUs of the running VM. */
  async setLiveVcpus(name: string, count: number): Promise<void> {
    await this.run(['setvcpus', name, String(count), '--live'], { subject: name });
  }

  /** Brings that many vCPUs online in the guest, through its agent; false when it could not. */
  async setGuestVcpus(name: string, count: number): Promise<boolean> {
    return (await this.runRaw(['setvcpus', name, String(count), '--guest'])).exitCode === 0;
  }

  /** Grows a disk of the running VM (the guest sees the new size at once). */
  async blockResize(name: string, target: string, bytes: number): Promise<void> {
    await this.run(['blockresize', name, target, `${bytes}B`], { subject: name });
  }

  /** Every domain's state, memory, vCPUs and disks in one call: `virsh domstats`, by domain name. */
  async domainStats(): Promise<Map<string, Record<string, string>>> {
    return parseDomstats(await this.run(['domstats', '--raw', '--state', '--balloon', '--vcpu', '--block']));
  }

  /** A libvirt network's state; reason network.notFound when there is none of that name. */
  async netInfo(name: string): Promise<NetInfo> {
    return parseNetInfo(await this.run(['net-info', name]));
  }

  /** A libvirt network's state, or undefined when virsh cannot show it (not defined; any failure but an interrupt). */
  async networkState(name: string): Promise<NetInfo | undefined> {
    return this.netInfo(name).catch((err: unknown) => {
      if (isInterrupt(err)) throw err;
      return undefined;
    });
  }

  /** The storage pools' names, active or not. */
  async poolNames(): Promise<string[]> {
    // virsh pads each pool name to a column width here (unlike domain names).
    return parseNames(await this.run(['pool-list', '--all', '--name'])).map((n) => n.trimEnd());
  }

  /** One storage pool (pool-info and pool-dumpxml); reason pool.notFound when there is none of that name. */
  async pool(name: string): Promise<PoolInfo> {
    const info = await this.run(virshCommand.poolInfo(name));
    return readPool(info, await this.run(virshCommand.poolDumpxml(name)));
  }

  async snapshotNames(vm: string): Promise<string[]> {
    return parseNames(await this.run(virshCommand.snapshotNames(vm), { subject: vm }));
  }

  /** One snapshot's facts; reason snapshot.notFound when the VM has none of that name. */
  async snapshot(vm: string, snapshot: string): Promise<SnapshotFacts> {
    return parseSnapshotXml(await this.run(virshCommand.snapshotDumpxml(vm, snapshot), { subject: vm }));
  }

  /** Takes a snapshot (see snapshotCreateArgs); reason snapshot.uefiUnsupported for libvirt's UEFI refusal. */
  async createSnapshot(request: SnapshotRequest): Promise<void> {
    await this.run(snapshotCreateArgs(request), { subject: request.vm });
  }

  /** metadataOnly: forget it in libvirt, leave its data (an external one's overlays) alone. */
  async deleteSnapshot(vm: string, snapshot: string, o: { metadataOnly?: boolean } = {}): Promise<void> {
    await this.run(['snapshot-delete', vm, snapshot, ...(o.metadataOnly ? ['--metadata'] : [])], { subject: vm });
  }

  async revertSnapshot(vm: string, snapshot: string): Promise<void> {
    await this.run(['snapshot-revert', vm, snapshot], { subject: vm });
  }

  /**
   * One guest agent command (QMP JSON) and its answer; `timeoutSeconds` is how long libvirt waits for the agent.
   * Reason agent.unavailable when there is no agent to answer (see GuestAgent in guest-agent.ts, which speaks QMP).
   */
  async agentCommand(name: string, json: string, timeoutSeconds: number): Promise<string> {
    // The process gets a little longer than libvirt's own wait: a hung connection must not hang vms.
    const timeoutMs = (timeoutSeconds + 30) * 1000;
    const args = ['qemu-agent-command', name, json, '--timeout', String(timeoutSeconds)];
    return this.run(args, { subject: name, timeoutMs });
  }

  /** External disk-only snapshot: the running VM continues on new overlay files; its current files become bases. */
  async snapshotToOverlays(
    name: string,
    overlays: { target: string; file: string }[],
    skip: string[],
    quiesce: boolean,
  ): Promise<void> {
    const specs = [
      ...overlays.flatMap((o) => ['--diskspec', `${o.target},snapshot=external,file=${o.file}`]),
      ...skip.flatMap((t) => ['--diskspec', `${t},snapshot=no`]),
    ];
    await this.run(
      [
        'snapshot-create-as',
        name,
        `vms-clone-${Date.now()}`,
        '--disk-only',
        '--atomic',
        '--no-metadata',
        ...(quiesce ? ['--quiesce'] : []),
        ...specs,
      ],
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
