import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

// The rules vms must keep after every command, checked on the real host (test/helpers/testbed.ts runs the light
// one after every CLI call; tests of concurrency and kills run the full one):
// - a frozen base's sha256 never changes, and it stays read-only;
// - no operation journal is left by a finished command (a killed one's is finished by the next command);
// - no orphan: every file in the images dir is a disk, a backing file or a recorded base of some VM, or a file the
//   test itself put there; every VM directory belongs to a VM;
// - metadata agrees with libvirt: every file a VM's metadata lists as made exists; every backing file is a recorded base.

const URI = 'qemu:///system';
const QEMU_UID = Number(execFileSync('id', ['-u', 'libvirt-qemu'], { encoding: 'utf8' }).trim());

export interface InvariantEnv {
  id: string;
  imagesDir: string;
  stateDir: string;
}

interface VmView {
  name: string;
  disks: string[];
  bases: string[];
  made: string[];
}

const virsh = (...args: string[]) =>
  execFileSync('virsh', ['-c', URI, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
const all = (xml: string, re: RegExp) => [...xml.matchAll(re)].map((m) => decode(m[1]!));
const decode = (s: string) =>
  s
    .replace(/&apos;/g, "'")
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');

function vmsOf(env: InvariantEnv): VmView[] | undefined {
  let list: string;
  try {
    list = virsh('list', '--all', '--name');
  } catch {
    return undefined; // libvirtd is down: nothing to compare with
  }
  const names = list
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s.startsWith(env.id));
  const out: VmView[] = [];
  for (const name of names) {
    let xml: string;
    try {
      xml = virsh('dumpxml', name, '--inactive');
    } catch {
      continue; // undefined meanwhile
    }
    out.push({
      name,
      disks: all(xml, /<disk type='file' device='disk'>[\s\S]*?<source file='([^']+)'/g),
      bases: all(xml, /<vms:base>([^<]*)<\/vms:base>/g),
      made: all(xml, /<vms:made>([^<]*)<\/vms:made>/g),
    });
  }
  return out;
}

function chainOf(disk: string): string[] {
  const out = execFileSync('qemu-img', ['info', '-U', '--backing-chain', '--output=json', disk], { encoding: 'utf8' });
  return (JSON.parse(out) as { filename: string }[]).map((i) => i.filename);
}

/** Tracks every base seen: its sha256 must never change, and it must stay read-only while any VM stands on it. */
export class BaseWatch {
  private readonly seen = new Map<string, string>();

  check(env: InvariantEnv): string[] {
    const problems: string[] = [];
    const vms = vmsOf(env);
    if (!vms) return problems;
    const listed = new Set(vms.flatMap((v) => v.bases));
    for (const base of listed) {
      if (!existsSync(base)) {
        problems.push(`base ${base} is listed by a VM but is gone`);
        continue;
      }
      const sum = sha256(base);
      const before = this.seen.get(base);
      if (before && before !== sum)
        problems.push(`base ${base} changed (sha256 ${before.slice(0, 12)} → ${sum.slice(0, 12)})`);
      this.seen.set(base, sum);
      // The one exception vms itself reports: a base a user froze under a running VM belongs to the qemu user, who
      // alone may chmod it (`clone` says so and lists it as `writable`).
      const st = statSync(base);
      if ((st.mode & 0o222) !== 0 && st.uid !== QEMU_UID) problems.push(`base ${base} is writable`);
    }
    // A base no VM lists any more may go (destroy), but never change while it stays.
    for (const [base, sum] of this.seen) {
      if (!listed.has(base) && existsSync(base) && sha256(base) !== sum) problems.push(`former base ${base} changed`);
    }
    return problems;
  }
}

/** The whole set of rules; `foreign` are files the test put in the images dir itself. Returns the problems found. */
export function fullCheck(env: InvariantEnv, watch: BaseWatch, foreign: string[] = []): string[] {
  const problems = watch.check(env);
  const vms = vmsOf(env);
  if (!vms) return [...problems, 'libvirtd does not answer'];
  const bases = new Set(vms.flatMap((v) => v.bases));
  const referenced = new Set<string>(foreign);
  for (const vm of vms) {
    for (const disk of vm.disks) {
      referenced.add(disk);
      if (!existsSync(disk)) {
        problems.push(`${vm.name}'s disk ${disk} is missing`);
        continue;
      }
      let chain: string[];
      try {
        chain = chainOf(disk);
      } catch (err) {
        problems.push(`${vm.name}'s disk chain of ${disk} cannot be read: ${(err as Error).message.split('\n')[0]}`);
        continue;
      }
      for (const file of chain.slice(1)) {
        referenced.add(file);
        if (!bases.has(file) && !foreign.includes(file))
          problems.push(`${vm.name} stands on ${file}, which no VM records as a base`);
      }
    }
    // Disks and bases are made at once; a clone's serial port files only when it first starts.
    for (const file of vm.made) {
      if (file.startsWith(env.imagesDir + '/') && !existsSync(file))
        problems.push(`${vm.name}'s metadata lists ${file} as made, but it is gone`);
    }
    for (const file of [...vm.made, ...vm.bases]) referenced.add(file);
  }
  for (const file of readdirSync(env.imagesDir)) {
    const path = join(env.imagesDir, file);
    if (!referenced.has(path)) problems.push(`orphan file ${path}`);
  }
  const names = new Set(vms.map((v) => v.name));
  for (const dir of readdirSync(env.stateDir)) {
    if (dir.startsWith('.')) continue; // .locks, .operations
    if (statSync(join(env.stateDir, dir)).isDirectory() && !names.has(dir))
      problems.push(`orphan directory ${join(env.stateDir, dir)}`);
  }
  const journals = existsSync(join(env.stateDir, '.operations')) ? readdirSync(join(env.stateDir, '.operations')) : [];
  if (journals.length) problems.push(`operation journals left: ${journals.join(', ')}`);
  return problems;
}
