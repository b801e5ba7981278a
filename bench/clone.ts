import { chmodSync, existsSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BASE_DIR, GiB, URI, type Harness } from './harness.js';
import { fmtMs, ratioCheck, rotate, Series, type BenchResult } from './lib.js';

// 1. `vms clone` (a linked clone: a frozen base and two overlays) against virt-clone's full copy, of a shut-off VM
// with 2 GiB written; 2. `vms clone` of 2 GiB against 8 GiB written (it should not care).

interface Source {
  name: string;
  disk: string;
  xmlFile: string;
  mode: number;
  gib: number;
}

/** A shut-off VM whose disk is a plain qcow2 (no backing file) with `gib` GiB written. */
async function makeSource(h: Harness, name: string, gib: number): Promise<Source> {
  const created = JSON.parse(
    (
      await h.vms([
        'create',
        name,
        '--bare',
        '--json',
        '--network',
        'none',
        '--no-graphics',
        '--disk',
        `${Math.max(10, gib + 2)}G`,
        '--memory',
        '256M',
        '--cpus',
        '1',
      ])
    ).stdout,
  );
  const disk: string = created.disks[0].path;
  if (!disk.startsWith(h.dirs.images + '/')) throw new Error(`vms create put the disk outside the bench dir: ${disk}`);
  const t = performance.now();
  const writes = Array.from({ length: gib }, (_, k) => ['-c', `write -P 0x5a ${k * GiB} ${GiB}`]).flat();
  const w = await h.sh('qemu-io', ['-f', 'qcow2', ...writes, disk], { timeoutMs: 900_000 });
  const wrote = (w.stdout.match(/^wrote /gm) ?? []).length;
  const info = JSON.parse((await h.sh('qemu-img', ['info', '-U', '--output=json', disk])).stdout);
  if (wrote !== gib || info['actual-size'] < gib * GiB)
    throw new Error(
      `qemu-io wrote ${wrote} GiB to ${disk} (actual size ${info['actual-size']}):\n${w.stdout}${w.stderr}`,
    );
  h.log(`${name}: ${gib} GiB written in ${fmtMs(performance.now() - t)}`);
  const xmlFile = join(h.dirs.tmp, `${name}.xml`);
  writeFileSync(xmlFile, (await h.virsh(['dumpxml', name, '--inactive'])).stdout);
  return { name, disk, xmlFile, mode: statSync(disk).mode & 0o777, gib };
}

/** Puts SRC back on its plain disk, as before `vms clone` froze it: every rep clones the same kind of source. */
async function restoreSource(h: Harness, src: Source): Promise<void> {
  const current = await h.diskOf(src.name);
  await h.virsh(['define', src.xmlFile]);
  if (current !== src.disk) rmSync(current, { force: true });
  chmodSync(src.disk, src.mode);
  if ((await h.diskOf(src.name)) !== src.disk) throw new Error(`could not restore ${src.name} onto ${src.disk}`);
}

/** One timed `vms clone SRC NEW --json`, checked, then the clone destroyed and SRC restored. */
async function timeVmsClone(h: Harness, src: Source, name: string, series: Series): Promise<void> {
  const r = await h.vms(['clone', src.name, name, '--json'], { allowFail: true });
  if (r.code !== 0) throw new Error(`vms clone ${src.name} ${name} exited ${r.code}: ${r.stdout}${r.stderr}`);
  series.add(r.ms);
  const out = JSON.parse(r.stdout);
  if (!out.linked || !out.frozen?.includes(src.disk))
    throw new Error(`vms clone did not make a linked clone on ${src.disk}: ${r.stdout.slice(0, 2000)}`);
  await h.destroyVm(name);
  if (!existsSync(src.disk))
    throw new Error(`vms destroy ${name} removed ${src.disk}, which ${src.name} still stands on`);
  await restoreSource(h, src);
}

/** One timed virt-clone full copy into the bench dir, checked, then removed. */
async function timeVirtClone(h: Harness, src: Source, name: string, series?: Series, withSync?: Series): Promise<void> {
  const file = join(h.dirs.images, `${name}.qcow2`);
  const r = await h.sh('virt-clone', ['--connect', URI, '--original', src.name, '--name', name, '--file', file], {
    timeoutMs: 600_000,
  });
  // The copy on disk, for scale only: virt-clone returns once its data is in the page cache.
  const s = await h.sh('sync', [], { timeoutMs: 600_000 });
  series?.add(r.ms);
  withSync?.add(r.ms + s.ms);
  const disk = await h.diskOf(name);
  if (disk !== file) throw new Error(`virt-clone put ${name}'s disk at ${disk}, not ${file}`);
  const size = statSync(file).size;
  await h.undefineQuietly(name);
  rmSync(file, { force: true });
  if (size < src.gib * GiB) throw new Error(`virt-clone's copy ${file} has only ${size} bytes`);
}

async function cloneVsVirtClone(h: Harness, b: BenchResult, src: Source): Promise<void> {
  const vmsS = new Series('vms clone (linked, bundle)', 'node dist/vms.cjs clone SRC NEW --json');
  const vcS = new Series(
    'virt-clone (full copy)',
    `virt-clone --connect ${URI} --original SRC --name NEW --file IMAGES/NEW.qcow2`,
  );
  const vcSync = new Series('for scale: virt-clone + sync (copy on disk)', 'virt-clone … && sync');
  b.series.push(vmsS, vcS, vcSync);
  // Untimed warm-up: the first virt-clone into a directory also registers a storage pool for it (a one-off).
  await timeVirtClone(h, src, `${h.prefix}vc-warm`);
  await timeVmsClone(h, src, `${h.prefix}c2-warm`, new Series('', ''));
  const REPS = 5;
  // Each timed virt-clone runs after SETTLE_MS idle, as a one-off command would: measured on this machine, virt-clone
  // is ~3× faster when it directly follows another virt-clone (the memory its copy goes through is still warm) than
  // after a few seconds idle, slower the longer the pause; vms clone does not care. Without the pause the alternation
  // mixes the two regimes (the virt-clone that goes second in a rep would always be the slow one).
  const SETTLE_MS = 6000;
  const settle = () => new Promise((r) => setTimeout(r, SETTLE_MS));
  for (let rep = 0; rep < REPS; rep++) {
    const steps = [
      () => timeVmsClone(h, src, `${h.prefix}c2-${rep}`, vmsS),
      async () => (await settle(), await timeVirtClone(h, src, `${h.prefix}vc-${rep}`, vcS, vcSync)),
    ];
    for (const step of rotate(steps, rep)) await step();
    h.log(
      `rep ${rep}: vms ${fmtMs(vmsS.samples.at(-1)!)}, virt-clone ${fmtMs(vcS.samples.at(-1)!)} (+ sync ${fmtMs(vcSync.samples.at(-1)!)})`,
    );
  }
  b.checks.push(ratioCheck('virt-clone / vms clone (vms ≥ 10× faster), SRC in page cache', vcS, vmsS, { min: 10 }));

  // The same with SRC's data evicted from the page cache before each command (a disk written long ago).
  const vmsCold = new Series(
    'vms clone, SRC evicted from page cache',
    'dd if=SRC-DISK iflag=nocache count=0; node dist/vms.cjs clone SRC NEW --json',
  );
  const vcCold = new Series(
    'virt-clone, SRC evicted from page cache',
    'dd if=SRC-DISK iflag=nocache count=0; virt-clone …',
  );
  b.series.push(vmsCold, vcCold);
  const evict = () => h.sh('dd', [`if=${src.disk}`, 'iflag=nocache', 'count=0', 'status=none']);
  for (let rep = 0; rep < REPS; rep++) {
    const steps = [
      async () => (await evict(), await timeVmsClone(h, src, `${h.prefix}k2-${rep}`, vmsCold)),
      async () => (await settle(), await evict(), await timeVirtClone(h, src, `${h.prefix}kc-${rep}`, vcCold)),
    ];
    for (const step of rotate(steps, rep)) await step();
    h.log(`cold rep ${rep}: vms ${fmtMs(vmsCold.samples.at(-1)!)}, virt-clone ${fmtMs(vcCold.samples.at(-1)!)}`);
  }
  const evictionNote: string[] = [];
  if (await h.has('fincore')) {
    await evict();
    evictionNote.push(
      `eviction check: \`fincore\` after \`dd iflag=nocache count=0\` shows ${(await h.sh('fincore', ['-n', '-o', 'RES', src.disk])).stdout.trim()} of SRC's disk resident.`,
    );
  }
  b.checks.push(ratioCheck('virt-clone / vms clone (vms ≥ 10× faster), SRC evicted', vcCold, vmsCold, { min: 10 }));
  evictionNote.push(
    `to be 10× faster than virt-clone here, vms clone would have to take ≤ ${fmtMs(vcS.median / 10)} (SRC cached) or ≤ ${fmtMs(vcCold.median / 10)} (SRC evicted); it took ${fmtMs(vmsS.median)} / ${fmtMs(vmsCold.median)}.`,
  );
  b.notes.push(
    `Both clone the same shut-off SRC: a plain qcow2 (10 GiB virtual) with 2 GiB written by qemu-io. After each vms clone the clone is destroyed (\`vms destroy --yes\`) and SRC is restored (its saved definition redefined, the overlay removed, the base made writable again), so every rep is a first clone of a plain 2 GiB disk, like virt-clone's.`,
    `${REPS} reps of each after one untimed warm-up of each (virt-clone's first run into a directory also registers a libvirt storage pool for it; the bench removes that pool at the end). The two alternate which goes first, and each timed virt-clone starts after ${SETTLE_MS / 1000} s idle: on this machine virt-clone takes ~0.8 s when it directly follows another virt-clone but ~2.2-3.4 s after 2-5 s idle (vms clone: no difference, measured), presumably because the free memory its 2 GiB copy passes through is handed back to the host between runs (a microVM with virtio_balloon). The pause measures virt-clone as a one-off command, the way it is used; back-to-back, the ratio was ~3.4-5× (cached) and ~5.4-9.8× (evicted) in earlier runs.`,
    `virt-clone writes its copy into the bench's images dir (--file); each copy is checked (≥ 2 GiB) and removed. In the first pair of rows SRC's data is in the page cache (just written), and virt-clone returns before its copy reaches the disk: both favour virt-clone. The "evicted" rows drop SRC's pages from the cache (\`dd iflag=nocache count=0\`, this one file only) before each command, as for a disk written long ago; they run as a second set of ${REPS} alternating reps. The "+ sync" row (virt-clone, then \`sync\`, timed together; informational, no target) is the time until the copy is on disk.`,
  );
  b.notes.push(...evictionNote);
}

async function cloneFlat(h: Harness, b: BenchResult, src2: Source): Promise<Source | undefined> {
  const free = h.freeBytes();
  const need = 8 * GiB + 4 * GiB;
  b.notes.push(
    `free space in ${BASE_DIR} before writing the 8 GiB source: ${(free / GiB).toFixed(1)} GiB (needed ${(need / GiB).toFixed(0)} GiB).`,
  );
  if (free < need) {
    b.error = `skipped: only ${(free / GiB).toFixed(1)} GiB free in ${BASE_DIR}, the 8 GiB source needs ${(need / GiB).toFixed(0)} GiB`;
    return undefined;
  }
  const src8 = await makeSource(h, `${h.prefix}src8`, 8);
  const t = performance.now();
  await h.sh('sync', [], { timeoutMs: 900_000 });
  h.log(`sync after writing: ${fmtMs(performance.now() - t)}`);
  const s2 = new Series('vms clone, 2 GiB written', 'node dist/vms.cjs clone SRC2 NEW --json');
  const s8 = new Series('vms clone, 8 GiB written', 'node dist/vms.cjs clone SRC8 NEW --json');
  b.series.push(s2, s8);
  const REPS = 7;
  for (let rep = -1; rep < REPS; rep++) {
    const warm = rep < 0 ? new Series('', '') : undefined;
    const steps = [
      () => timeVmsClone(h, src2, `${h.prefix}f2-${rep + 1}`, warm ?? s2),
      () => timeVmsClone(h, src8, `${h.prefix}f8-${rep + 1}`, warm ?? s8),
    ];
    for (const step of rotate(steps, rep + 1)) await step();
  }
  const ratio = s8.median / s2.median;
  b.checks.push({
    what: 'vms clone 8 GiB / 2 GiB (flat)',
    ratio,
    target: 'within 1.2× (0.83–1.2)',
    pass: ratio <= 1.2 && ratio >= 1 / 1.2,
  });
  b.notes.push(
    `${REPS} reps after one warm-up pair, the two sources alternating which goes first; each rep clones a freshly restored plain-qcow2 source (see benchmark 1).`,
  );
  return src8;
}

/** Both clone benchmarks: the 2 GiB source of the first is the small one of the second. */
export async function cloneBenchmarks(h: Harness): Promise<void> {
  let src2: Source | undefined;
  await h.bench('1. Clone a shut-off VM with 2 GiB written: vms clone vs virt-clone', async (b) => {
    if (h.freeBytes() < 6 * GiB)
      throw new Error(`only ${(h.freeBytes() / GiB).toFixed(1)} GiB free in ${BASE_DIR}: needs 6 GiB`);
    src2 = await makeSource(h, `${h.prefix}src2`, 2);
    await h.sh('sync', [], { timeoutMs: 600_000 });
    await cloneVsVirtClone(h, b, src2);
  });
  await h.bench('2. vms clone: 2 GiB vs 8 GiB written', async (b) => {
    if (!src2) throw new Error('the 2 GiB source of benchmark 1 is missing');
    await cloneFlat(h, b, src2);
  });
}
