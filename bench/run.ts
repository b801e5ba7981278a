// npm run bench: builds vms, then measures RATIOS side by side on the real libvirt of this machine (qemu:///system,
// set up by test/setup.sh) and writes bench/results.md. The machine is noisy: nothing here asserts absolute times,
// every comparison alternates its commands within each rep and compares medians.
//
// Everything runs in a private directory /var/lib/vms-test/bench-<id> with domains named bench-<id>-*; both are
// removed at the end, also on failure or Ctrl-C. No libvirt network is used. Benchmarks 1-4 never start a VM;
// benchmark 5 runs the whole `vms create` install on the test ISO (test/setup.sh builds it) and so starts VMs: one at a
// time, 256M and 1 CPU each, under TCG on a host without KVM, each destroyed after its rep.
//
// `npm run bench` runs every benchmark and writes bench/results.md; `npm run bench -- create list` runs only the named
// ones (keys: see SECTIONS in main) and writes its report to a file in the temp dir, so results.md always holds a
// whole run.

import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, statfsSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import {
  fmtMs,
  machineDetails,
  ratioCheck,
  renderConsole,
  renderMarkdown,
  rotate,
  run,
  stopRunning,
  Series,
  StampedText,
  type BenchResult,
  type RunOpts,
} from './lib.js';

const ROOT = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
const URI = 'qemu:///system';
const BASE_DIR = '/var/lib/vms-test';
const GiB = 2 ** 30;
const NODE = process.execPath;
const CJS = join(ROOT, 'dist/vms.cjs');
const BIN = join(ROOT, 'dist/vms');
const RESULTS = join(ROOT, 'bench/results.md');

const id = randomBytes(3).toString('hex');
const prefix = `bench-${id}-`;
const dir = join(BASE_DIR, `bench-${id}`);
const dirs = { images: join(dir, 'images'), state: join(dir, 'vms'), iso: join(dir, 'iso'), cache: join(dir, 'cache'), tmp: join(dir, 'tmp') };
const env: NodeJS.ProcessEnv = {
  ...process.env,
  VMS_IMAGES_DIR: dirs.images,
  VMS_STATE_DIR: dirs.state,
  VMS_ISO_DIR: dirs.iso,
  VMS_CACHE_DIR: dirs.cache,
  VMS_CONFIG: join(dir, 'config.json'),
  LIBVIRT_DEFAULT_URI: URI,
  NO_COLOR: '1',
};
delete env.NODE_OPTIONS; // the children must be plain node, not node + tsx
delete env.FORCE_COLOR;

let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopping) process.exit(130);
    stopping = true;
    console.error(`\n${sig}: stopping the running command, then cleaning up (again to quit at once)`);
    stopRunning();
  });
}
const checkStop = () => {
  if (stopping) throw new Error('interrupted');
};

const t0 = performance.now();
const elapsed = () => `${((performance.now() - t0) / 1000).toFixed(0)}s`;
const log = (msg: string) => console.error(`[bench ${elapsed()}] ${msg}`);

/** Every command of the benchmarks goes through here: after a Ctrl-C no new one starts. */
const sh = (cmd: string, args: readonly string[], opts: RunOpts = {}) => {
  checkStop();
  return run(cmd, args, { env, ...opts });
};
const vms = (args: string[], opts: RunOpts = {}) => sh(NODE, [CJS, ...args], opts);
const virsh = (args: string[], opts: RunOpts = {}) => sh('virsh', ['-c', URI, ...args], opts);
/** virsh for the clean-up, which must run after a Ctrl-C too. */
const cleanVirsh = (args: string[]) => run('virsh', ['-c', URI, ...args], { env, allowFail: true });
const has = async (tool: string) => (await run('sh', ['-c', `command -v ${tool}`], { allowFail: true })).code === 0;
const freeBytes = (path: string) => {
  const s = statfsSync(path);
  return s.bavail * s.bsize;
};

// ---------------------------------------------------------------------------------------------------------------
// Domains

const myDomains = async () =>
  (await cleanVirsh(['list', '--all', '--name'])).stdout
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s.startsWith(prefix));

/** The file of a domain's first disk, from its persistent definition. */
async function diskOf(name: string): Promise<string> {
  const xml = (await virsh(['dumpxml', name, '--inactive'])).stdout;
  const m = /<disk[^>]*device='disk'[^>]*>[\s\S]*?<source file='([^']+)'/.exec(xml);
  if (!m) throw new Error(`no disk in ${name}'s definition`);
  return m[1]!;
}

async function undefineQuietly(name: string): Promise<void> {
  await cleanVirsh(['destroy', name]);
  if ((await cleanVirsh(['undefine', name, '--nvram'])).code !== 0) await cleanVirsh(['undefine', name]);
}

async function createTiny(name: string): Promise<void> {
  await vms(['create', name, '--bare', '--json', '--network', 'none', '--no-graphics', '--disk', '64M', '--memory', '256M', '--cpus', '1']);
}

interface Source {
  name: string;
  disk: string;
  xmlFile: string;
  mode: number;
  gib: number;
}

/** A shut-off VM whose disk is a plain qcow2 (no backing file) with `gib` GiB written. */
async function makeSource(name: string, gib: number): Promise<Source> {
  const created = JSON.parse((await vms(['create', name, '--bare', '--json', '--network', 'none', '--no-graphics', '--disk', `${Math.max(10, gib + 2)}G`, '--memory', '256M', '--cpus', '1'])).stdout);
  const disk: string = created.disks[0].path;
  if (!disk.startsWith(dirs.images + '/')) throw new Error(`vms create put the disk outside the bench dir: ${disk}`);
  const t = performance.now();
  const writes = Array.from({ length: gib }, (_, k) => ['-c', `write -P 0x5a ${k * GiB} ${GiB}`]).flat();
  const w = await sh('qemu-io', ['-f', 'qcow2', ...writes, disk], { timeoutMs: 900_000 });
  const wrote = (w.stdout.match(/^wrote /gm) ?? []).length;
  const info = JSON.parse((await sh('qemu-img', ['info', '-U', '--output=json', disk])).stdout);
  if (wrote !== gib || info['actual-size'] < gib * GiB) throw new Error(`qemu-io wrote ${wrote} GiB to ${disk} (actual size ${info['actual-size']}):\n${w.stdout}${w.stderr}`);
  log(`${name}: ${gib} GiB written in ${fmtMs(performance.now() - t)}`);
  const xmlFile = join(dirs.tmp, `${name}.xml`);
  writeFileSync(xmlFile, (await virsh(['dumpxml', name, '--inactive'])).stdout);
  return { name, disk, xmlFile, mode: statSync(disk).mode & 0o777, gib };
}

/** Puts SRC back on its plain disk, as before `vms clone` froze it: every rep clones the same kind of source. */
async function restoreSource(src: Source): Promise<void> {
  const current = await diskOf(src.name);
  await virsh(['define', src.xmlFile]);
  if (current !== src.disk) rmSync(current, { force: true });
  chmodSync(src.disk, src.mode);
  if ((await diskOf(src.name)) !== src.disk) throw new Error(`could not restore ${src.name} onto ${src.disk}`);
}

const problems: string[] = []; // CLI misbehaviour seen during the run, for the report

/** `vms destroy NAME --yes`; should it fail, the failure is reported and the VM is removed by hand. */
async function destroyVm(name: string): Promise<void> {
  const d = await vms(['destroy', name, '--yes', '--json'], { allowFail: true });
  if (d.code === 0) return;
  problems.push(`\`vms destroy ${name} --yes --json\` exited ${d.code}: ${(d.stdout + d.stderr).trim().slice(0, 300)}`);
  const file = await diskOf(name);
  await undefineQuietly(name);
  rmSync(file, { force: true });
  rmSync(join(dirs.state, name), { recursive: true, force: true });
}

/** One timed `vms clone SRC NEW --json`, checked, then the clone destroyed and SRC restored. */
async function timeVmsClone(src: Source, name: string, series: Series): Promise<void> {
  const r = await vms(['clone', src.name, name, '--json'], { allowFail: true });
  if (r.code !== 0) throw new Error(`vms clone ${src.name} ${name} exited ${r.code}: ${r.stdout}${r.stderr}`);
  series.add(r.ms);
  const out = JSON.parse(r.stdout);
  if (!out.linked || !out.frozen?.includes(src.disk)) throw new Error(`vms clone did not make a linked clone on ${src.disk}: ${r.stdout.slice(0, 2000)}`);
  await destroyVm(name);
  if (!existsSync(src.disk)) throw new Error(`vms destroy ${name} removed ${src.disk}, which ${src.name} still stands on`);
  await restoreSource(src);
}

/** One timed virt-clone full copy into the bench dir, checked, then removed. */
async function timeVirtClone(src: Source, name: string, series?: Series, withSync?: Series): Promise<void> {
  const file = join(dirs.images, `${name}.qcow2`);
  const r = await sh('virt-clone', ['--connect', URI, '--original', src.name, '--name', name, '--file', file], { timeoutMs: 600_000 });
  // The copy on disk, for scale only: virt-clone returns once its data is in the page cache.
  const s = await sh('sync', [], { timeoutMs: 600_000 });
  series?.add(r.ms);
  withSync?.add(r.ms + s.ms);
  const disk = await diskOf(name);
  if (disk !== file) throw new Error(`virt-clone put ${name}'s disk at ${disk}, not ${file}`);
  const size = statSync(file).size;
  await undefineQuietly(name);
  rmSync(file, { force: true });
  if (size < src.gib * GiB) throw new Error(`virt-clone's copy ${file} has only ${size} bytes`);
}

// ---------------------------------------------------------------------------------------------------------------
// Benchmarks

const results: BenchResult[] = [];

async function bench(title: string, body: (b: BenchResult) => Promise<unknown>): Promise<void> {
  if (stopping) return;
  const b: BenchResult = { title, series: [], checks: [], notes: [] };
  results.push(b);
  const start = performance.now();
  log(`== ${title}`);
  try {
    await body(b);
  } catch (err) {
    b.error = stopping ? `interrupted (${(err as Error).message.split('\n')[0]})` : (err as Error).message;
    log(`FAILED: ${b.error}`); // the remaining benchmarks still run (unless interrupted), the report is still written
  } finally {
    b.seconds = (performance.now() - start) / 1000;
  }
}

async function coldStart(b: BenchResult): Promise<void> {
  const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;
  const node0 = new Series('node -e 0', 'node -e 0');
  const cjs = new Series('bundle --version', 'node dist/vms.cjs --version');
  const bin = new Series('binary --version', 'dist/vms --version');
  b.series.push(node0, cjs, bin);
  const cmds: [Series, string, string[]][] = [
    [node0, NODE, ['-e', '0']],
    [cjs, NODE, [CJS, '--version']],
    [bin, BIN, ['--version']],
  ];
  const REPS = 25;
  for (let rep = -3; rep < REPS; rep++) {
    for (const [series, cmd, args] of rotate(cmds, rep + 3)) {
      const r = await sh(cmd, args);
      if (series !== node0 && r.stdout.trim() !== version) throw new Error(`${cmd} ${args.join(' ')} printed '${r.stdout.trim()}', not ${version}`);
      if (rep >= 0) series.add(r.ms); // the first 3 rounds warm the page cache
    }
  }
  b.checks.push(ratioCheck('node dist/vms.cjs --version / node -e 0', cjs, node0, { max: 1.5 }));
  b.checks.push(ratioCheck('dist/vms --version / node -e 0', bin, node0, { max: 1.5 }));
  b.notes.push(`${REPS} reps after 3 warm-up rounds; the three commands rotate which goes first in each rep.`);
}

/** The processes one `vms list --json` starts: by strace (every successful execve), and by `-v`'s `$ ...` lines. */
async function countProcesses(label: string, useStrace: boolean, b: BenchResult): Promise<number> {
  const viaVerbose = (await vms(['list', '--json', '-v'])).stderr.split('\n').filter((l) => l.startsWith('$ '));
  if (!useStrace) {
    b.notes.push(`${label}: \`vms list --json -v\` ran ${viaVerbose.length} commands: ${viaVerbose.map((l) => `\`${l.slice(2, 40)}…\``).join(', ')} (strace not installed)`);
    return viaVerbose.length;
  }
  const counts: number[] = [];
  for (const [what, cmd, args] of [
    ['node dist/vms.cjs', NODE, [CJS, 'list', '--json']],
    ['dist/vms', BIN, ['list', '--json']],
  ] as const) {
    const file = join(dirs.tmp, `strace-${counts.length}-${label.replace(/\W/g, '')}.txt`);
    await sh('strace', ['-f', '-qq', '-e', 'trace=execve', '-e', 'signal=none', '-o', file, cmd, ...args]);
    const execs = successfulExecs(readFileSync(file, 'utf8')).slice(1); // [0] is the CLI itself
    counts.push(execs.length);
    b.notes.push(`${label}: \`${what} list --json\` started ${execs.length} processes (strace -f, successful execve): ${execs.map((e) => `\`${e}\``).join(', ')}`);
  }
  b.notes.push(`${label}: \`vms list --json -v\` printed ${viaVerbose.length} \`$ command\` lines.`);
  if (new Set([...counts, viaVerbose.length]).size !== 1) b.notes.push(`${label}: the counts disagree: ${counts.join(', ')}, -v ${viaVerbose.length}`);
  return counts[0]!;
}

/** "virsh list --all"-style summaries of every execve that succeeded, in order. */
function successfulExecs(trace: string): string[] {
  const pending = new Map<string, string>();
  const ok: string[] = [];
  const summary = (argv: string) => {
    const words = [...argv.matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => m[1]!);
    const shown = words[0] === 'virsh' && words[1] === '-c' ? [words[0], ...words.slice(3)] : words;
    return shown.join(' ').slice(0, 48) + (shown.join(' ').length > 48 ? '…' : '');
  };
  for (const line of trace.split('\n')) {
    const call = /^(\d+)\s+execve\("[^"]*", \[(.*)/.exec(line);
    if (call) {
      if (/\) = 0$/.test(line)) ok.push(summary(call[2]!));
      else if (/<unfinished \.\.\.>$/.test(line)) pending.set(call[1]!, summary(call[2]!));
      continue;
    }
    const resumed = /^(\d+)\s+<\.\.\. execve resumed>.*= 0$/.exec(line);
    if (resumed && pending.has(resumed[1]!)) ok.push(pending.get(resumed[1]!)!);
  }
  return ok;
}

async function listScaling(b: BenchResult): Promise<void> {
  for (const d of await myDomains()) await undefineQuietly(d); // only this bench's own domains are to be listed
  const names = Array.from({ length: 30 }, (_, i) => `${prefix}l${String(i + 1).padStart(2, '0')}`);
  const t = performance.now();
  for (const n of names) await createTiny(n);
  log(`30 domains defined with vms create --bare in ${fmtMs(performance.now() - t)}`);
  // Switching between 3 and 30: the other 27 are undefined and defined again from their saved XML, in one virsh each.
  const extra = names.slice(3);
  const xmlFiles: string[] = [];
  for (const n of extra) {
    const f = join(dirs.tmp, `${n}.xml`);
    writeFileSync(f, (await virsh(['dumpxml', n, '--inactive'])).stdout);
    xmlFiles.push(f);
  }
  const showAll = () => virsh([xmlFiles.map((f) => `define ${f}`).join('; ')]);
  const hideExtra = () => virsh([extra.map((n) => `undefine ${n}`).join('; ')]);

  const node0 = new Series('node -e 0', 'node -e 0');
  const help = new Series('reference: bundle loaded, no libvirt', 'node dist/vms.cjs --help');
  const virshList = {
    3: new Series('reference: virsh list --all (3)', 'virsh -c qemu:///system list --all'),
    30: new Series('reference: virsh list --all (30)', 'virsh -c qemu:///system list --all'),
  };
  // The one batch virsh that `vms list` runs after `virsh list` (src/core/list.ts + Virsh.batch), built the same way.
  const batchScript = (n: number) =>
    names.slice(0, n).map((d, i) => `echo @@m@@${2 * i}; dumpxml ${d}; echo @@m@@${2 * i + 1}; domblkinfo ${d} --all`).join('; ') + '; echo @@m@@end';
  const batch = {
    3: new Series('reference: the virsh batch of vms list (3)', 'virsh -c qemu:///system "echo …; dumpxml D; domblkinfo D --all; …" (3 domains)'),
    30: new Series('reference: the virsh batch of vms list (30)', 'virsh -c qemu:///system "echo …; dumpxml D; domblkinfo D --all; …" (30 domains)'),
  };
  const s = {
    3: { cjs: new Series('bundle, 3 domains', 'node dist/vms.cjs list --json'), bin: new Series('binary, 3 domains', 'dist/vms list --json') },
    30: { cjs: new Series('bundle, 30 domains', 'node dist/vms.cjs list --json'), bin: new Series('binary, 30 domains', 'dist/vms list --json') },
  };
  b.series.push(node0, s[3].cjs, s[30].cjs, s[3].bin, s[30].bin, help, virshList[3], batch[3], virshList[30], batch[30]);
  const listed: Record<3 | 30, number[]> = { 3: [], 30: [] };
  const processes: Record<3 | 30, number> = { 3: NaN, 30: NaN };
  const useStrace = await has('strace');

  await hideExtra();
  let state: 3 | 30 = 3;
  const ROUNDS = 3;
  const PER_STATE = 4;
  for (let round = 0; round < ROUNDS; round++) {
    for (const want of [3, 30] as const) {
      if (state !== want) {
        if (want === 30) await showAll();
        else await hideExtra();
        state = want;
      }
      if (round === 0) processes[want] = await countProcesses(`${want} domains`, useStrace, b);
      type Cmd = [Series | undefined, string, string[]];
      const cmds: Cmd[] = [
        [node0, NODE, ['-e', '0']],
        [s[want].cjs, NODE, [CJS, 'list', '--json']],
        [s[want].bin, BIN, ['list', '--json']],
        [help, NODE, [CJS, '--help']],
        [virshList[want], 'virsh', ['-c', URI, 'list', '--all']],
        [batch[want], 'virsh', ['-c', URI, batchScript(want)]],
      ];
      for (let rep = -1; rep < PER_STATE; rep++) {
        for (const [series, cmd, args] of rotate(cmds, rep + 1 + round)) {
          const r = await sh(cmd, args);
          if (args.includes('--json')) {
            const all = JSON.parse(r.stdout) as { name: string }[];
            const mine = all.filter((v) => v.name.startsWith(prefix)).length;
            if (mine !== want) throw new Error(`vms list showed ${mine} of this bench's domains, expected ${want}`);
            listed[want].push(all.length);
          }
          if (rep >= 0 && series) series.add(r.ms); // rep -1 warms up after each switch
        }
      }
    }
  }
  const range = (xs: number[]) => (Math.min(...xs) === Math.max(...xs) ? `${xs[0]}` : `${Math.min(...xs)}–${Math.max(...xs)}`);
  b.checks.push(ratioCheck('bundle list, 30 domains / node -e 0', s[30].cjs, node0, { max: 2.5 }));
  b.checks.push(ratioCheck('binary list, 30 domains / node -e 0', s[30].bin, node0, { max: 2.5 }));
  b.checks.push(ratioCheck('bundle list, 30 domains / 3 domains', s[30].cjs, s[3].cjs, { max: 1.3 }));
  b.checks.push(ratioCheck('binary list, 30 domains / 3 domains', s[30].bin, s[3].bin, { max: 1.3 }));
  const same = processes[3] === processes[30];
  b.checks.push({ what: 'processes spawned, 30 domains / 3 domains', ratio: processes[30] / processes[3], target: '= 1× (same count)', pass: same });
  const others = Math.max(...listed[3]) > 3 || Math.max(...listed[30]) > 30;
  b.notes.push(
    `"3"/"30 domains" are this bench's own domains; \`vms list\` shows every domain on ${URI}: the lists had ${range(listed[3])} entries with 3 of ours and ${range(listed[30])} with 30 of ours${others ? " (other sessions' test domains were defined too)" : ' (no other domains were defined during the run)'}.`,
    `${ROUNDS} rounds of (3 domains: ${PER_STATE} reps, 30 domains: ${PER_STATE} reps), each state warmed up by one discarded rep; 27 domains are undefined/redefined from their saved XML between states. node -e 0 is pooled over both states.`,
    `reference rows (no targets): \`node dist/vms.cjs --help\` loads the bundle and exits without libvirt; \`virsh list --all\` and the batch are the two virsh processes \`vms list\` runs, one after the other.`,
  );
  for (const n of [3, 30] as const) {
    const floor = help.median + virshList[n].median + batch[n].median;
    b.notes.push(
      `${n} domains: bundle load + virsh list + virsh batch = ${fmtMs(help.median)} + ${fmtMs(virshList[n].median)} + ${fmtMs(batch[n].median)} = ${fmtMs(floor)}; \`node dist/vms.cjs list --json\` took ${fmtMs(s[n].cjs.median)}, so ${fmtMs(s[n].cjs.median - floor)} went to vms's own work in between (loading execa, parsing the XML, etc.).`,
    );
  }
  for (const n of names) await undefineQuietly(n);
}

async function cloneVsVirtClone(b: BenchResult, src: Source): Promise<void> {
  const vmsS = new Series('vms clone (linked, bundle)', 'node dist/vms.cjs clone SRC NEW --json');
  const vcS = new Series('virt-clone (full copy)', `virt-clone --connect ${URI} --original SRC --name NEW --file IMAGES/NEW.qcow2`);
  const vcSync = new Series('for scale: virt-clone + sync (copy on disk)', 'virt-clone … && sync');
  b.series.push(vmsS, vcS, vcSync);
  // Untimed warm-up: the first virt-clone into a directory also registers a storage pool for it (a one-off).
  await timeVirtClone(src, `${prefix}vc-warm`);
  await timeVmsClone(src, `${prefix}c2-warm`, new Series('', ''));
  const REPS = 5;
  // Each timed virt-clone runs after SETTLE_MS idle, as a one-off command would: measured on this machine, virt-clone
  // is ~3× faster when it directly follows another virt-clone (the memory its copy goes through is still warm) than
  // after a few seconds idle, slower the longer the pause; vms clone does not care. Without the pause the alternation
  // mixes the two regimes (the virt-clone that goes second in a rep would always be the slow one).
  const SETTLE_MS = 6000;
  const settle = () => new Promise((r) => setTimeout(r, SETTLE_MS));
  for (let rep = 0; rep < REPS; rep++) {
    const steps = [
      () => timeVmsClone(src, `${prefix}c2-${rep}`, vmsS),
      async () => (await settle(), await timeVirtClone(src, `${prefix}vc-${rep}`, vcS, vcSync)),
    ];
    for (const step of rotate(steps, rep)) await step();
    log(`rep ${rep}: vms ${fmtMs(vmsS.samples.at(-1)!)}, virt-clone ${fmtMs(vcS.samples.at(-1)!)} (+ sync ${fmtMs(vcSync.samples.at(-1)!)})`);
  }
  b.checks.push(ratioCheck('virt-clone / vms clone (vms ≥ 10× faster), SRC in page cache', vcS, vmsS, { min: 10 }));

  // The same with SRC's data evicted from the page cache before each command (a disk written long ago).
  const vmsCold = new Series('vms clone, SRC evicted from page cache', 'dd if=SRC-DISK iflag=nocache count=0; node dist/vms.cjs clone SRC NEW --json');
  const vcCold = new Series('virt-clone, SRC evicted from page cache', 'dd if=SRC-DISK iflag=nocache count=0; virt-clone …');
  b.series.push(vmsCold, vcCold);
  const evict = () => sh('dd', [`if=${src.disk}`, 'iflag=nocache', 'count=0', 'status=none']);
  for (let rep = 0; rep < REPS; rep++) {
    const steps = [
      async () => (await evict(), await timeVmsClone(src, `${prefix}k2-${rep}`, vmsCold)),
      async () => (await settle(), await evict(), await timeVirtClone(src, `${prefix}kc-${rep}`, vcCold)),
    ];
    for (const step of rotate(steps, rep)) await step();
    log(`cold rep ${rep}: vms ${fmtMs(vmsCold.samples.at(-1)!)}, virt-clone ${fmtMs(vcCold.samples.at(-1)!)}`);
  }
  const evictionNote: string[] = [];
  if (await has('fincore')) {
    await evict();
    evictionNote.push(`eviction check: \`fincore\` after \`dd iflag=nocache count=0\` shows ${(await sh('fincore', ['-n', '-o', 'RES', src.disk])).stdout.trim()} of SRC's disk resident.`);
  }
  b.checks.push(ratioCheck('virt-clone / vms clone (vms ≥ 10× faster), SRC evicted', vcCold, vmsCold, { min: 10 }));
  evictionNote.push(`to be 10× faster than virt-clone here, vms clone would have to take ≤ ${fmtMs(vcS.median / 10)} (SRC cached) or ≤ ${fmtMs(vcCold.median / 10)} (SRC evicted); it took ${fmtMs(vmsS.median)} / ${fmtMs(vmsCold.median)}.`);
  b.notes.push(
    `Both clone the same shut-off SRC: a plain qcow2 (10 GiB virtual) with 2 GiB written by qemu-io. After each vms clone the clone is destroyed (\`vms destroy --yes\`) and SRC is restored (its saved definition redefined, the overlay removed, the base made writable again), so every rep is a first clone of a plain 2 GiB disk, like virt-clone's.`,
    `${REPS} reps of each after one untimed warm-up of each (virt-clone's first run into a directory also registers a libvirt storage pool for it; the bench removes that pool at the end). The two alternate which goes first, and each timed virt-clone starts after ${SETTLE_MS / 1000} s idle: on this machine virt-clone takes ~0.8 s when it directly follows another virt-clone but ~2.2-3.4 s after 2-5 s idle (vms clone: no difference, measured), presumably because the free memory its 2 GiB copy passes through is handed back to the host between runs (a microVM with virtio_balloon). The pause measures virt-clone as a one-off command, the way it is used; back-to-back, the ratio was ~3.4-5× (cached) and ~5.4-9.8× (evicted) in earlier runs.`,
    `virt-clone writes its copy into the bench's images dir (--file); each copy is checked (≥ 2 GiB) and removed. In the first pair of rows SRC's data is in the page cache (just written), and virt-clone returns before its copy reaches the disk: both favour virt-clone. The \"evicted\" rows drop SRC's pages from the cache (\`dd iflag=nocache count=0\`, this one file only) before each command, as for a disk written long ago; they run as a second set of ${REPS} alternating reps. The "+ sync" row (virt-clone, then \`sync\`, timed together; informational, no target) is the time until the copy is on disk.`,
  );
  b.notes.push(...evictionNote);
}

async function cloneFlat(b: BenchResult, src2: Source): Promise<Source | undefined> {
  const free = freeBytes(dir);
  const need = 8 * GiB + 4 * GiB;
  b.notes.push(`free space in ${BASE_DIR} before writing the 8 GiB source: ${(free / GiB).toFixed(1)} GiB (needed ${(need / GiB).toFixed(0)} GiB).`);
  if (free < need) {
    b.error = `skipped: only ${(free / GiB).toFixed(1)} GiB free in ${BASE_DIR}, the 8 GiB source needs ${(need / GiB).toFixed(0)} GiB`;
    return undefined;
  }
  const src8 = await makeSource(`${prefix}src8`, 8);
  const t = performance.now();
  await sh('sync', [], { timeoutMs: 900_000 });
  log(`sync after writing: ${fmtMs(performance.now() - t)}`);
  const s2 = new Series('vms clone, 2 GiB written', 'node dist/vms.cjs clone SRC2 NEW --json');
  const s8 = new Series('vms clone, 8 GiB written', 'node dist/vms.cjs clone SRC8 NEW --json');
  b.series.push(s2, s8);
  const REPS = 7;
  for (let rep = -1; rep < REPS; rep++) {
    const warm = rep < 0 ? new Series('', '') : undefined;
    const steps = [() => timeVmsClone(src2, `${prefix}f2-${rep + 1}`, warm ?? s2), () => timeVmsClone(src8, `${prefix}f8-${rep + 1}`, warm ?? s8)];
    for (const step of rotate(steps, rep + 1)) await step();
  }
  const ratio = s8.median / s2.median;
  b.checks.push({ what: 'vms clone 8 GiB / 2 GiB (flat)', ratio, target: 'within 1.2× (0.83–1.2)', pass: ratio <= 1.2 && ratio >= 1 / 1.2 });
  b.notes.push(`${REPS} reps after one warm-up pair, the two sources alternating which goes first; each rep clones a freshly restored plain-qcow2 source (see benchmark 1).`);
  return src8;
}

// ---------------------------------------------------------------------------------------------------------------
// vms create on the test ISO

const TEST_ISO = join(process.env.VMS_TEST_CACHE ?? '/var/cache/vms-test', 'archiso/archlinux-test.iso');
const FIXTURES = join(ROOT, 'test/fixtures');

/** One span of a `vms create` run: what it was, where it starts and ends in the -v output, how long it took. */
interface Span {
  label: string;
  from: string;
  ms: number;
  /** Commands vms ran in the guest's shell during the span (its end markers in the transcript). */
  commands?: number;
}

interface CreateSplit {
  guest: Span[];
  overhead: Span[];
  /** Reboot, from the login prompt to the exit: vms's last redefine and `vms info`, inside the reboot's guest time. */
  rebootTail: number;
  /** `virsh start` of both boots (host side), inside the boot rows' guest time. */
  virshStart: number;
}

/**
 * Cuts one `vms create NAME -v` into the guest's own time and what vms adds, from its stderr as it arrived: `==> `
 * step lines (a step lasts until the next one) and the console transcript's login prompts. The spans tile the run
 * from spawn to exit; "unaccounted" (overhead minus its parts) shows whether they did.
 */
function splitCreate(name: string, out: StampedText, total: number, coldIso: boolean): CreateSplit {
  const steps: { title: string; ms: number; index: number; end: number }[] = [];
  for (let f = out.find(/==> ([^\n]*)\n/); f; f = out.find(/==> ([^\n]*)\n/, f.end)) steps.push({ title: f.match[1]!, ms: f.ms, index: f.index, end: f.end });
  const fail = (what: string) =>
    new Error(`cannot find ${what} in the -v output of \`vms create ${name}\`; its steps: ${steps.map((s) => `${fmtMs(s.ms)} ${s.title}`).join(' | ')}`);
  const stepAt = (title: string | RegExp) => {
    const i = steps.findIndex((s) => (typeof title === 'string' ? s.title === title : title.test(s.title)));
    if (i < 0) throw fail(`'==> ${title}'`);
    return i;
  };
  /** When the step after the one at `i` started (the end of step i); the exit for the last one. */
  const endOf = (i: number) => steps[i + 1]?.ms ?? total;
  const lasting = (i: number) => endOf(i) - steps[i]!.ms;
  const commandsIn = (i: number) => (out.text.slice(steps[i]!.end, steps[i + 1]?.index).match(/__VMS_END_[0-9a-f]+=\d+/g) ?? []).length;
  /** The first login prompt after step i's line. */
  const promptAfter = (i: number, prompt: RegExp) => {
    const f = out.find(prompt, steps[i]!.end);
    if (!f) throw fail(`${prompt} after '==> ${steps[i]!.title}'`);
    return f;
  };
  /** From a prompt to the next step line: vms logging in and making the shell predictable. */
  const handshake = (prompt: { end: number; ms: number }, next: RegExp) => {
    const i = steps.findIndex((s) => s.end > prompt.end);
    if (i < 0 || !next.test(steps[i]!.title)) throw fail(`${next} right after the login prompt`);
    return steps[i]!.ms - prompt.ms;
  };

  const live = stepAt('Booting the live ISO');
  const livePrompt = promptAfter(live, /archiso login:/);
  const sw = stepAt(`Switching ${name} to boot from its disk`);
  const diskBootAt = steps.findIndex((s) => s.title === `Booting ${name} from its disk`);
  const diskBoot = diskBootAt >= 0 ? diskBootAt : sw + 1; // not started by vms: the boot counts from the switch's end
  const diskPrompt = promptAfter(diskBoot, /login:/);
  const reboot = stepAt(`Rebooting ${name}`);
  const read = stepAt(/^Reading /);
  const installer = stepAt(/^Copying the installer/);
  const profiles = stepAt(/^Copying profile scripts/);
  const guest: Span[] = [
    { label: 'live ISO boot', from: '==> Booting the live ISO → first "archiso login:"', ms: livePrompt.ms - steps[live]!.ms },
    { label: 'install.sh', from: '==> Installing (install.sh) → next ==>', ms: lasting(stepAt('Installing (install.sh)')) },
    { label: 'power-off', from: '==> Powering off NAME → next ==>', ms: lasting(stepAt(`Powering off ${name}`)) },
    { label: 'disk boot', from: `${diskBootAt >= 0 ? '==> Booting NAME from its disk' : 'end of the switch step'} → next "login:"`, ms: diskPrompt.ms - steps[diskBoot]!.ms },
    ...steps.flatMap((s, i) => (/^Applying profile /.test(s.title) ? [{ label: `profile ${s.title.slice(17)}`, from: `==> ${s.title} → next ==>`, ms: lasting(i) }] : [])),
    { label: 'reboot', from: '==> Rebooting NAME → exit', ms: total - steps[reboot]!.ms },
  ];
  const overhead: Span[] = [
    { label: 'process start-up', from: 'spawn → first ==>', ms: steps[0]!.ms },
    { label: 'checking input', from: '==> Checking input → next ==>', ms: lasting(stepAt('Checking input')) },
    { label: `ISO read (${coldIso ? 'cold cache: extraction' : 'cached'})`, from: '==> Reading ISO → next ==>', ms: lasting(read) },
    { label: 'disk + define', from: 'end of the ISO read → ==> Booting the live ISO', ms: steps[live]!.ms - endOf(read) },
    { label: 'login handshake, live ISO', from: '"archiso login:" → ==> Copying the installer', ms: handshake(livePrompt, /^Copying the installer/) },
    { label: 'pushing the installer', from: '==> Copying the installer → next ==>', ms: lasting(installer), commands: commandsIn(installer) },
    { label: 'redefine to boot from disk', from: '==> Switching NAME to boot from its disk → next ==>', ms: lasting(sw) },
    { label: 'login handshake, installed disk', from: '"NAME login:" → ==> Copying profile scripts', ms: handshake(diskPrompt, /^Copying profile scripts/) },
    { label: 'pushing the profile scripts', from: '==> Copying profile scripts → next ==>', ms: lasting(profiles), commands: commandsIn(profiles) },
  ];
  const startOf = (i: number) => (steps[i + 1]?.title === 'Logging in on the serial console' ? lasting(i) : 0);
  return { guest, overhead, rebootTail: total - promptAfter(reboot, /login:/).ms, virshStart: startOf(live) + (diskBootAt >= 0 ? startOf(diskBootAt) : 0) };
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const pct = (part: number, whole: number) => `${((100 * part) / whole).toFixed(1)}%`;

async function createOverhead(b: BenchResult): Promise<void> {
  if (!existsSync(TEST_ISO)) throw new Error(`the test ISO ${TEST_ISO} is missing: run test/setup.sh first (as root)`);
  const createEnv = { ...env, VMS_GUEST_DIR: join(FIXTURES, 'guest'), VMS_PROFILE_PATH: join(FIXTURES, 'profiles') };
  const args = ['--profile', 'tchild', '--iso', TEST_ISO, '--memory', '256M', '--cpus', '1', '--disk', '128M', '--network', 'none', '--no-graphics', '-v'];
  const total = new Series('total', `node dist/vms.cjs create NAME ${args.join(' ').replace(TEST_ISO, 'TEST-ISO')}`);
  const guestS = new Series('guest time', 'sum of the "guest:" rows');
  const overheadS = new Series('overhead = total − guest time', 'also the sum of the "overhead:" rows');
  const unaccounted = new Series('overhead: unaccounted', 'overhead − the rows above (0 when the spans tile the run)');
  const tail = new Series('for reference: reboot after the login prompt', 'NAME login: → exit (last redefine, vms info; in the reboot row)');
  const virshStart = new Series('for reference: virsh start, both boots', '==> Booting … → ==> Logging in (host side; in the boot rows)');
  // "guest: …" and "overhead: …" rows, in the order of the run (the cold and the cached ISO read side by side).
  const rows = new Map<string, Series>();
  const row = (kind: string, span: Span) => {
    const key = `${kind}: ${span.label}`;
    if (!rows.has(key)) rows.set(key, new Series(key, span.from));
    return rows.get(key)!;
  };
  const ratios: string[] = [];
  const others = new Set<string>(); // other sessions' running domains, seen before or after a rep
  const noteOthers = async () => {
    for (const d of (await virsh(['list', '--name'])).stdout.split('\n').map((s) => s.trim())) if (d && !d.startsWith(prefix)) others.add(d);
  };
  const REPS = 3;
  for (let rep = 0; rep < REPS; rep++) {
    const name = `${prefix}mk${rep + 1}`;
    await noteOthers();
    const r = await vms(['create', name, ...args], { env: createEnv, stamp: true, allowFail: true, timeoutMs: 900_000 });
    try {
      if (r.code !== 0) throw new Error(`\`vms create ${name}\` exited ${r.code}:\n${r.stderr.slice(-3000)}`);
      const info = JSON.parse((await vms(['info', name, '--json'])).stdout);
      if (info.state !== 'running' || info.profile !== 'tchild' || info.pending !== undefined) throw new Error(`vms create ${name} did not finish its VM: ${JSON.stringify(info).slice(0, 500)}`);
      const split = splitCreate(name, new StampedText(r.stderrChunks!), r.ms, rep === 0);
      const guest = sum(split.guest.map((s) => s.ms));
      const overhead = r.ms - guest;
      total.add(r.ms);
      guestS.add(guest);
      overheadS.add(overhead);
      unaccounted.add(overhead - sum(split.overhead.map((s) => s.ms)));
      tail.add(split.rebootTail);
      virshStart.add(split.virshStart);
      for (const s of split.guest) row('guest', s).add(s.ms);
      for (const s of split.overhead) row('overhead', s).add(s.ms);
      ratios.push(pct(overhead, r.ms));
      const parts = split.overhead.map((s) => `${s.label} ${fmtMs(s.ms)}${s.commands ? ` (${s.commands} shell commands)` : ''}`).join(', ');
      b.notes.push(`rep ${rep + 1}${rep === 0 ? ', the cold ISO-cache run' : ''}: total ${fmtMs(r.ms)} = guest ${fmtMs(guest)} + overhead ${fmtMs(overhead)} (${pct(overhead, r.ms)}); overhead: ${parts}. Load average (1 min) at its end: ${os.loadavg()[0]!.toFixed(2)}.`);
      log(`rep ${rep + 1}: total ${fmtMs(r.ms)}, guest ${fmtMs(guest)}, overhead ${fmtMs(overhead)} (${pct(overhead, r.ms)})`);
    } finally {
      if ((await myDomains()).includes(name)) await destroyVm(name);
    }
    await noteOthers();
  }
  const rank = [...new Set([...rows.keys()].map((k) => k.split(' (')[0]!))]; // the ISO read's two rows share a rank
  const byRank = (s: Series) => rank.indexOf(s.label.split(' (')[0]!);
  b.series.push(total, guestS, overheadS, ...[...rows.values()].sort((x, y) => byRank(x) - byRank(y)), unaccounted, tail, virshStart);
  b.checks.push(ratioCheck('overhead / total of vms create', overheadS, total, { max: 0.3 }));
  b.notes.push(
    `${REPS} reps, one after the other, each a fresh VM (\`${prefix}mk1\`…) destroyed with \`vms destroy --yes\` afterwards; medians over all ${REPS}; overhead / total per rep: ${ratios.join(', ')}. Run exactly like test/integration/install.test.ts: VMS_GUEST_DIR=test/fixtures/guest, VMS_PROFILE_PATH=test/fixtures/profiles, the test ISO, plus \`-v\`. The ISO cache (VMS_CACHE_DIR) is the bench's own and starts empty, so rep 1 reads the kernel and initramfs out of the ISO (the cold row) and reps 2-${REPS} find them cached.`,
    `How it is cut: stderr is timestamped chunk by chunk as it arrives; a \`==> \` step lasts from its line to the next one. Guest time is what the guest itself takes: the live boot (\`==> Booting the live ISO\`, i.e. \`virsh start\` and the kernel, to the first \`archiso login:\`), install.sh (its step), the power-off (its step: \`sync\`, \`poweroff\` and vms polling \`virsh domstate\` every 500 ms until it is off), the disk boot (\`==> Booting NAME from its disk\` to the next \`login:\`), each profile (its step; the \`sync\` after the last one included) and the reboot (\`==> Rebooting NAME\` to the exit of vms). Overhead is everything else, i.e. total − guest time: node start-up, checking input, reading the ISO, making the disk and defining the domain, the two login handshakes (from the prompt until vms has a prepared shell), pushing the installer and the profile scripts, and the redefine that switches the VM to its disk (with moving the downloaded packages to the shared cache).`,
    `Guest time as defined holds some host-side work of vms and libvirt, shown by the reference rows: \`virsh start\` of both boots, the ≤ 500 ms \`domstate\` polling of the power-off, and after the reboot's login prompt vms's last redefine and \`vms info\`. Counted the other way, the overhead would be larger by about the two reference rows.`,
    `The login handshakes and the pushes go through the serial console: vms types a command into the guest's shell and waits for its answer, one at a time (a file is sent as base64 lines of at most 768 characters, each line one command, then decoded and checked by sha256 in the guest), so they run at the speed of the guest's CPU, here emulated by TCG, and their time goes with the number of commands more than with the bytes. They are overhead because vms does them, but not host-side work of vms alone.`,
    `The target: ≤ 30% of the total. The test guest is tiny (its install.sh copies a busybox system in ${fmtMs(rows.get('guest: install.sh')!.median)}), so its guest time is a lower bound for a real Arch install, where pacstrap alone takes minutes; vms's share of a real install should be smaller than here, as long as its own steps stay about as long (the real installer is larger to push). At 30% vms would add almost half of what the guest itself takes, even on this nearly empty guest: more than that is worth looking at.`,
    `The ISO read hashes the whole ISO on every create (its sha256 is the cache key), cached or not: ${(statSync(TEST_ISO).size / 2 ** 20).toFixed(0)} MiB here, over 1 GiB for the real Arch ISO, where the cached row would be seconds rather than milliseconds.`,
    others.size
      ? `Other domains were running on ${URI} before or after some reps (${[...others].join(', ')}): their guests compete for the ${os.cpus().length} CPUs with these TCG guests, so the guest rows above are slower than on an idle host.`
      : `No other domain was running on ${URI} before or after any rep (other processes may still have been: see the load averages).`,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Main

async function cleanup(): Promise<string[]> {
  const notes: string[] = [];
  try {
    for (const d of await myDomains()) await undefineQuietly(d);
    const left = await myDomains();
    if (left.length) notes.push(`cleanup: could not undefine ${left.join(', ')}`);
  } catch (err) {
    notes.push(`cleanup: listing domains failed: ${(err as Error).message}`);
  }
  try {
    // virt-clone registers a storage pool for the directory it wrote to: remove any pool of ours.
    const pools = (await cleanVirsh(['pool-list', '--all', '--name'])).stdout.split('\n').map((s) => s.trim()).filter(Boolean);
    for (const p of pools) {
      const xml = (await cleanVirsh(['pool-dumpxml', p])).stdout;
      const path = /<path>([^<]+)<\/path>/.exec(xml)?.[1];
      if (path && (path === dir || path.startsWith(dir + '/'))) {
        await cleanVirsh(['pool-destroy', p]);
        await cleanVirsh(['pool-undefine', p]);
        notes.push(`cleanup: removed libvirt storage pool '${p}' (${path}) that virt-clone had registered`);
      }
    }
  } catch (err) {
    notes.push(`cleanup: pools: ${(err as Error).message}`);
  }
  rmSync(dir, { recursive: true, force: true });
  if (existsSync(dir)) notes.push(`cleanup: ${dir} is still there`);
  return notes;
}

/**
 * The benchmarks, in the order a whole run takes them: the cheapest and most noise-sensitive first, before the
 * disk-heavy ones; the VMs of `create` (TCG keeps the host's CPUs busy) last. Keys for `npm run bench -- KEY…`.
 */
const SECTIONS = {
  start: { tools: [], run: () => bench('4. Cold start: --version vs node -e 0', coldStart) },
  list: { tools: ['virsh'], run: () => bench('3. vms list --json: 30 vs 3 domains, and vs node -e 0', listScaling) },
  clone: {
    tools: ['virsh', 'qemu-img', 'qemu-io', 'virt-clone', 'sync', 'dd'],
    async run() {
      let src2: Source | undefined;
      await bench('1. Clone a shut-off VM with 2 GiB written: vms clone vs virt-clone', async (b) => {
        if (freeBytes(dir) < 6 * GiB) throw new Error(`only ${(freeBytes(dir) / GiB).toFixed(1)} GiB free in ${BASE_DIR}: needs 6 GiB`);
        src2 = await makeSource(`${prefix}src2`, 2);
        await sh('sync', [], { timeoutMs: 600_000 });
        await cloneVsVirtClone(b, src2);
      });
      await bench('2. vms clone: 2 GiB vs 8 GiB written', async (b) => {
        if (!src2) throw new Error('the 2 GiB source of benchmark 1 is missing');
        await cloneFlat(b, src2);
      });
    },
  },
  create: { tools: ['virsh'], run: () => bench('5. Orchestration overhead of `vms create` on the test ISO', createOverhead) },
} satisfies Record<string, { tools: string[]; run: () => Promise<void> }>;
type SectionKey = keyof typeof SECTIONS;

const asked = process.argv.slice(2);
const unknown = asked.filter((k) => !(k in SECTIONS));
if (unknown.length) {
  console.error(`unknown benchmark ${unknown.join(', ')}: choose from ${Object.keys(SECTIONS).join(', ')} (none: all of them)`);
  process.exit(2);
}
const selected = (Object.keys(SECTIONS) as SectionKey[]).filter((k) => asked.length === 0 || asked.includes(k));
const partial = selected.length < Object.keys(SECTIONS).length;
/** A partial run must not replace the whole report. */
const reportFile = partial ? join(os.tmpdir(), `vms-bench-${selected.join('-')}-${id}.md`) : RESULTS;

async function main(): Promise<number> {
  const date = new Date().toISOString();
  log(`building (node scripts/build.mjs --binary) in ${ROOT}`);
  await run(NODE, ['scripts/build.mjs', '--binary'], { cwd: ROOT, env: { ...process.env, NODE_OPTIONS: '' } });
  for (const f of [CJS, BIN]) if (!existsSync(f)) throw new Error(`${f} was not built`);
  const missing: string[] = [];
  for (const t of new Set(selected.flatMap((k): string[] => SECTIONS[k].tools))) if (!(await has(t))) missing.push(t);
  if (missing.length) throw new Error(`missing tools: ${missing.join(', ')} (qemu-io is in qemu-utils, virt-clone in virtinst)`);
  if (!existsSync(BASE_DIR)) throw new Error(`${BASE_DIR} does not exist: run test/setup.sh first (as root)`);

  mkdirSync(dir, { mode: 0o755 });
  chmodSync(dir, 0o755); // qemu's user must be able to traverse it whatever the umask
  for (const d of Object.values(dirs)) {
    mkdirSync(d, { mode: 0o755 });
    chmodSync(d, 0o755);
  }
  const machine = await machineDetails(URI, dir, env);
  machine.push(['free space in /var/lib/vms-test at start', `${(freeBytes(dir) / GiB).toFixed(1)} GiB`]);
  log(`private dir ${dir}, domains ${prefix}*`);

  let cleanupNotes: string[] = [];
  try {
    for (const key of selected) await SECTIONS[key].run();
  } finally {
    log('cleaning up');
    cleanupNotes = await cleanup();
  }

  results.sort((a, b) => a.title.localeCompare(b.title));
  const footer = [
    '## Notes',
    '',
    `- Whole run: ${elapsed()} (build included). Load average at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(' / ')}.`,
    `- Environment: VMS_IMAGES_DIR/VMS_STATE_DIR/VMS_ISO_DIR/VMS_CACHE_DIR/VMS_CONFIG in ${dir}, LIBVIRT_DEFAULT_URI=${URI}, NO_COLOR=1; VMs made with \`--network none --no-graphics\`. Only benchmark 5 starts VMs (one at a time, 256M, 1 CPU, TCG here); benchmarks 1-4 never do. Times are wall-clock from spawn to exit of each command, so process start-up is included for every command alike.`,
    ...problems.map((p) => `- CLI problem: ${p}`),
    ...cleanupNotes.map((n) => `- ${n}`),
    ...(cleanupNotes.some((n) => /could not|failed|still there/.test(n)) ? [] : [`- Cleanup: every ${prefix}* domain, any storage pool virt-clone registered and ${dir} were removed.`]),
  ];
  writeFileSync(reportFile, renderMarkdown({ date, machine, benches: results, footer }));
  console.log(renderConsole(results));
  console.log(`\nwrote ${reportFile}${partial ? ` (only ${selected.join(', ')}: ${RESULTS} is left as it was)` : ''}`);
  const failed = results.some((b) => b.error) || stopping;
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`bench failed: ${(err as Error).stack ?? err}`);
    const done = existsSync(dir) ? cleanup().then((notes) => notes.forEach((n) => console.error(n))) : Promise.resolve();
    void done.finally(() => process.exit(1));
  },
);
