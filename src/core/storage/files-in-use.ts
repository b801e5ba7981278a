import { realpathSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import {
  domainXmlReferences,
  snapshotReferences,
  type FileAccess,
  type FileReference,
  type FileRole,
} from '../../libvirt/domain-files.js';
import { domainFacts, parseDomainXml } from '../../libvirt/domain-parse.js';
import { parseNames, virshCommand } from '../../libvirt/virsh.js';
import { ChainReader } from './backing-chain.js';
import type { Context } from '../context.js';

// Which files the VMs on this host use, for every decision that could hurt one: deleting a file (destroy, gc, disk
// detach --delete), writing into one (disk attach, a serial port's file), freezing one. libvirt is the source: each
// domain's saved and running definitions and its snapshots, and qemu-img for the backing chains under their disks.
//
//   const inUse = await filesInUse(ctx, { except: 'web' });   // every VM but web
//   inUse.usesOf('/var/lib/libvirt/images/base.qcow2')        // → [{ vm: 'web2', role: 'backing', … }]
//   inUse.unreadable                                          // VMs it could not fully read, and why
//
// It never throws because of one VM: a VM whose definition or disk chain cannot be read is listed in `unreadable`
// with the reason, and whatever could be read of it is still in `uses`.

export type { FileAccess, FileRole };

export interface FileUse {
  /** As the VM names it (compare with usesOf, which sees through symlinks, hard links and `..`). */
  path: string;
  vm: string;
  role: FileRole;
  access: FileAccess;
  /** Named only by this snapshot of the VM (a revert would bring it back); else by its saved or running definition. */
  snapshot?: string;
  /** For a backing file: the disk image it lies under. */
  under?: string;
}

export interface UnreadableVm {
  vm: string;
  reason: string;
  /**
   * True when the VM may use files that are not in `uses` (its definition or a disk chain could not be read): a
   * caller about to delete or overwrite a file must assume this VM uses it. False when only a file is missing (a
   * backing file, a disk): everything it names is listed all the same.
   */
  incomplete: boolean;
}

/** What vms recorded for a VM in its saved definition's metadata. */
export interface VmRecord {
  name: string;
  /** Files vms made for it (metadata.made). */
  made: string[];
  /** Read-only bases vms froze for it (metadata.bases). */
  bases: string[];
}

export interface FilesInUse {
  uses: FileUse[];
  unreadable: UnreadableVm[];
  /** Every VM read, with the files vms made for it. */
  vms: VmRecord[];
  /** The uses of one file, however it is named. */
  usesOf(path: string): FileUse[];
}

/**
 * A file's real path (symlinks and `..` resolved), also for a path that does not exist yet: its nearest existing
 * directory resolved, the rest kept.
 */
export function realPath(path: string): string {
  const abs = resolve(path);
  try {
    return realpathSync(abs);
  } catch {
    const parent = dirname(abs);
    return parent === abs ? abs : join(realPath(parent), basename(abs));
  }
}

/** Two names of one file get one key: the inode when it exists (hard links too), else its real path. */
function fileKey(path: string): string {
  let s;
  try {
    s = statSync(path, { throwIfNoEntry: false });
  } catch {
    // not ours to look at (a root-only directory, for a user): its name has to do
  }
  return s ? `inode ${s.dev}:${s.ino}` : `path ${realPath(path)}`;
}

/** A use in words, for messages: "the base under u's disk /…/u.qcow2", "b's disk", "s's NVRAM". */
export function describeUse(u: FileUse): string {
  const vm = `${u.vm}'s`;
  const what: Record<FileRole, string> = {
    disk: u.access === 'read' ? `${vm} read-only disk` : `${vm} disk`,
    backing: `a base under ${vm} disk${u.under ? ` ${u.under}` : ''}`,
    cdrom: `${vm} ISO (cdrom)`,
    nvram: `${vm} NVRAM (UEFI variables)`,
    loader: `${vm} firmware`,
    kernel: `${vm} kernel`,
    initrd: `${vm} initrd`,
    console: `${vm} console socket`,
    serial: `${vm} serial port`,
    log: `${vm} console transcript`,
    channel: `${vm} channel socket`,
    memory: `the memory file of ${vm} snapshot ${u.snapshot ?? ''}`.trimEnd(),
  };
  return what[u.role] + (u.snapshot && u.role !== 'memory' ? ` (in its snapshot ${u.snapshot})` : '');
}

/**
 * Says which VMs could not be fully read, for a check about `path` that goes on without them (one broken VM must not
 * block every other command); a deletion must not go on this way: it keeps the file instead.
 */
export function noteUnchecked(ctx: Context, inUse: FilesInUse, path: string): void {
  for (const u of inUse.unreadable.filter((x) => x.incomplete))
    ctx.progress.note(`could not check whether ${u.vm} uses ${path}: ${u.reason}`);
}

/** Formats that cannot have a backing file: their chain is the file itself (and reading it must not probe it). */
const FLAT_FORMATS = new Set(['raw', undefined]);

/** One VM's definitions (saved, running) and snapshots as virsh printed them; undefined where virsh failed. */
interface VmXml {
  name: string;
  saved?: string;
  live?: string;
  snapshots: { name: string; xml?: string }[];
  /** Its snapshots could not be listed. */
  snapshotsUnknown: boolean;
}

/**
 * Reads the domains: their saved and running definitions and their snapshot lists in one virsh process, then (only
 * when there are snapshots) the snapshots' definitions in a second one.
 */
async function readDomains(ctx: Context, names: string[]): Promise<VmXml[]> {
  const out = await ctx.virsh.batch(
    names.flatMap((n) => [
      virshCommand.dumpxml(n, { inactive: true }),
      virshCommand.dumpxml(n),
      virshCommand.snapshotTable(n),
      virshCommand.snapshotNames(n),
    ]),
  );
  const vms: VmXml[] = [];
  for (const [i, name] of names.entries()) {
    const [saved, live, table, list] = out.slice(i * 4, i * 4 + 4);
    // `--name` prints nothing both when it fails and when there are none; the table always has its header, and one
    // row per snapshot under the dashes. Rows but no names (all deleted in between, or a failure): asked once more.
    const rows = table?.split(/^-+$/m)[1];
    let snapshots = list === undefined ? undefined : parseNames(list);
    if (rows !== undefined && !snapshots) snapshots = parseNames(rows).length ? await snapshotNames(ctx, name) : [];
    vms.push({
      name,
      saved,
      live,
      snapshots: (snapshots ?? []).map((s) => ({ name: s })),
      snapshotsUnknown: snapshots === undefined,
    });
  }
  const wanted = vms.flatMap((vm) => vm.snapshots.map((s) => ({ vm, s })));
  const xmls = await ctx.virsh.batch(wanted.map(({ vm, s }) => virshCommand.snapshotDumpxml(vm.name, s.name)));
  for (const [i, { s }] of wanted.entries()) s.xml = xmls[i];
  return vms;
}

/** A VM's snapshot names, or undefined when virsh cannot list them. */
async function snapshotNames(ctx: Context, vm: string): Promise<string[] | undefined> {
  return ctx.virsh.snapshotNames(vm).catch(() => undefined);
}

/** What one VM uses, as far as it could be read. */
interface VmUses {
  name: string;
  uses: FileUse[];
  unreadable: UnreadableVm[];
  record?: VmRecord;
}

/** Goes through one VM's definitions and snapshots; the chains under its disks are read (a few at a time) meanwhile. */
async function vmUses(ctx: Context, vm: VmXml, chains: ChainReader): Promise<VmUses> {
  const result: VmUses = { name: vm.name, uses: [], unreadable: [] };
  const seen = new Set<string>();
  const add = (u: FileUse) => {
    const key = JSON.stringify([u.path, u.role, u.access, u.snapshot ?? '', u.under ?? '']);
    if (seen.has(key)) return;
    seen.add(key);
    result.uses.push(u);
  };
  const problem = (p: Omit<UnreadableVm, 'vm'>) => {
    if (!result.unreadable.some((u) => u.reason === p.reason)) result.unreadable.push({ vm: vm.name, ...p });
  };
  // Their files are added after the definitions' own (in a fixed order), once every chain is read.
  const chainsRead: (() => Promise<void>)[] = [];
  const addReferences = (refs: FileReference[], snapshot?: string) => {
    for (const ref of refs) {
      add({ path: ref.path, vm: vm.name, role: ref.role, access: ref.access, ...(snapshot && { snapshot }) });
      if (ref.role !== 'disk' || FLAT_FORMATS.has(ref.format)) continue;
      const reading = chains.read(ref.path);
      chainsRead.push(async () => {
        const chain = await reading;
        for (const file of chain.files)
          add({
            path: file,
            vm: vm.name,
            role: 'backing',
            access: 'read',
            ...(snapshot && { snapshot }),
            under: ref.path,
          });
        if (chain.problem) problem(chain.problem);
      });
    }
  };

  if (!vm.saved && !vm.live) {
    // Undefined meanwhile (then it uses nothing any more), or virsh cannot print it.
    if (await ctx.virsh.exists(vm.name).catch(() => true))
      problem({ reason: 'virsh cannot print its definition', incomplete: true });
    return result;
  }
  for (const [which, xml] of [
    ['saved', vm.saved],
    ['running', vm.live],
  ] as const) {
    if (!xml) continue;
    try {
      addReferences(await domainXmlReferences(xml));
      if (which === 'saved')
        result.record = { name: vm.name, ...pick(domainFacts(await parseDomainXml(xml)).metadata) };
    } catch (err) {
      problem({ reason: `cannot read its ${which} definition: ${(err as Error).message}`, incomplete: true });
    }
  }
  if (!vm.saved) problem({ reason: 'virsh cannot print its saved definition', incomplete: true });
  if (vm.snapshotsUnknown) problem({ reason: 'virsh cannot list its snapshots', incomplete: true });
  for (const s of vm.snapshots) {
    try {
      if (s.xml) addReferences(await snapshotReferences(s.xml), s.name);
      // Deleted meanwhile, it needs nothing any more.
      else if ((await snapshotNames(ctx, vm.name))?.includes(s.name) ?? true) throw new Error('virsh cannot print it');
    } catch (err) {
      problem({ reason: `cannot read its snapshot ${s.name}: ${(err as Error).message}`, incomplete: true });
    }
  }
  for (const addChain of chainsRead) await addChain();
  return result;
}

const pick = ({ made, bases }: { made: string[]; bases: string[] }) => ({ made, bases });

/** Reads the VMs one after the other (their chains a few at a time). */
async function readVms(ctx: Context, names: string[]): Promise<VmUses[]> {
  const chains = new ChainReader(ctx);
  const out: VmUses[] = [];
  for (const vm of await readDomains(ctx, names)) out.push(await vmUses(ctx, vm, chains));
  return out;
}

/**
 * Every file that each VM (each libvirt domain but `except`) uses, from its saved and running definitions and its
 * snapshots: disks with their whole backing chains, ISOs, NVRAM, firmware, kernel and initrd, serial files and
 * sockets and their transcripts, snapshot memory files.
 */
export async function filesInUse(ctx: Context, opts: { except?: string } = {}): Promise<FilesInUse> {
  const names = (await ctx.virsh.names()).filter((n) => n !== opts.except);
  let read = await readVms(ctx, names);
  // A VM caught half-way through another command (a disk or snapshot being made) can look broken for a moment: the
  // ones that did are read once more, and only what is still broken then counts.
  const again = read.filter((v) => v.unreadable.some((u) => u.incomplete)).map((v) => v.name);
  if (again.length) {
    const reread = await readVms(ctx, again);
    read = read.map((v) => reread.find((r) => r.name === v.name) ?? v);
  }
  const uses = read.flatMap((v) => v.uses);
  let index: Map<string, FileUse[]> | undefined;
  const usesOf = (path: string) => {
    if (!index) {
      index = new Map();
      for (const u of uses) {
        const key = fileKey(u.path);
        index.set(key, [...(index.get(key) ?? []), u]);
      }
    }
    return index.get(fileKey(path)) ?? [];
  };
  return {
    uses,
    unreadable: read.flatMap((v) => v.unreadable),
    vms: read.flatMap((v) => (v.record ? [v.record] : [])),
    usesOf,
  };
}
