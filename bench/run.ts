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

import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { cloneBenchmarks } from './clone.js';
import { coldStart } from './cold-start.js';
import { createOverhead } from './create.js';
import { BASE_DIR, BIN, CJS, GiB, Harness, NODE, ROOT, URI } from './harness.js';
import { machineDetails, renderConsole, renderMarkdown, run, stopRunning } from './lib.js';
import { listScaling } from './list.js';

// The driver: picks the benchmarks (bench/cold-start.ts, list.ts, clone.ts, create.ts), builds vms, runs them with
// one Harness (bench/harness.ts) and writes the report.

const RESULTS = join(ROOT, 'bench/results.md');
const h = new Harness();

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (h.stopping) process.exit(130);
    h.stopping = true;
    console.error(`\n${sig}: stopping the running command, then cleaning up (again to quit at once)`);
    stopRunning();
  });
}

/**
 * The benchmarks, in the order a whole run takes them: the cheapest and most noise-sensitive first, before the
 * disk-heavy ones; the VMs of `create` (TCG keeps the host's CPUs busy) last. Keys for `npm run bench -- KEY…`.
 */
const SECTIONS = {
  start: { tools: [], run: () => h.bench('4. Cold start: --version vs node -e 0', (b) => coldStart(h, b)) },
  list: {
    tools: ['virsh'],
    run: () => h.bench('3. vms list --json: 30 vs 3 domains, and vs node -e 0', (b) => listScaling(h, b)),
  },
  clone: { tools: ['virsh', 'qemu-img', 'qemu-io', 'virt-clone', 'sync', 'dd'], run: () => cloneBenchmarks(h) },
  create: {
    tools: ['virsh'],
    run: () => h.bench('5. Orchestration overhead of `vms create` on the test ISO', (b) => createOverhead(h, b)),
  },
} satisfies Record<string, { tools: string[]; run: () => Promise<void> }>;
type SectionKey = keyof typeof SECTIONS;

const asked = process.argv.slice(2);
const unknown = asked.filter((k) => !(k in SECTIONS));
if (unknown.length) {
  console.error(
    `unknown benchmark ${unknown.join(', ')}: choose from ${Object.keys(SECTIONS).join(', ')} (none: all of them)`,
  );
  process.exit(2);
}
const selected = (Object.keys(SECTIONS) as SectionKey[]).filter((k) => asked.length === 0 || asked.includes(k));
const partial = selected.length < Object.keys(SECTIONS).length;
/** A partial run must not replace the whole report. */
const reportFile = partial ? join(os.tmpdir(), `vms-bench-${selected.join('-')}-${h.id}.md`) : RESULTS;

async function main(): Promise<number> {
  const date = new Date().toISOString();
  h.log(`building (node scripts/build.mjs --binary) in ${ROOT}`);
  await run(NODE, ['scripts/build.mjs', '--binary'], { cwd: ROOT, env: { ...process.env, NODE_OPTIONS: '' } });
  for (const f of [CJS, BIN]) if (!existsSync(f)) throw new Error(`${f} was not built`);
  const missing: string[] = [];
  for (const t of new Set(selected.flatMap((k): string[] => SECTIONS[k].tools))) if (!(await h.has(t))) missing.push(t);
  if (missing.length)
    throw new Error(`missing tools: ${missing.join(', ')} (qemu-io is in qemu-utils, virt-clone in virtinst)`);
  if (!existsSync(BASE_DIR)) throw new Error(`${BASE_DIR} does not exist: run test/setup.sh first (as root)`);

  mkdirSync(h.dir, { mode: 0o755 });
  chmodSync(h.dir, 0o755); // qemu's user must be able to traverse it whatever the umask
  for (const d of Object.values(h.dirs)) {
    mkdirSync(d, { mode: 0o755 });
    chmodSync(d, 0o755);
  }
  const machine = await machineDetails(URI, h.dir, h.env);
  machine.push(['free space in /var/lib/vms-test at start', `${(h.freeBytes() / GiB).toFixed(1)} GiB`]);
  h.log(`private dir ${h.dir}, domains ${h.prefix}*`);

  let cleanupNotes: string[];
  try {
    for (const key of selected) await SECTIONS[key].run();
  } finally {
    h.log('cleaning up');
    cleanupNotes = await h.cleanup();
  }

  const results = [...h.results].sort((a, b) => a.title.localeCompare(b.title));
  const footer = [
    '## Notes',
    '',
    `- Whole run: ${h.elapsed()} (build included). Load average at the end: ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' / ')}.`,
    `- Environment: VMS_IMAGES_DIR/VMS_STATE_DIR/VMS_ISO_DIR/VMS_CACHE_DIR/VMS_CONFIG in ${h.dir}, LIBVIRT_DEFAULT_URI=${URI}, NO_COLOR=1; VMs made with \`--network none --no-graphics\`. Only benchmark 5 starts VMs (one at a time, 256M, 1 CPU, TCG here); benchmarks 1-4 never do. Times are wall-clock from spawn to exit of each command, so process start-up is included for every command alike.`,
    ...h.problems.map((p) => `- CLI problem: ${p}`),
    ...cleanupNotes.map((n) => `- ${n}`),
    ...(cleanupNotes.some((n) => /could not|failed|still there/.test(n))
      ? []
      : [`- Cleanup: every ${h.prefix}* domain, any storage pool virt-clone registered and ${h.dir} were removed.`]),
  ];
  writeFileSync(reportFile, renderMarkdown({ date, machine, benches: results, footer }));
  console.log(renderConsole(results));
  console.log(`\nwrote ${reportFile}${partial ? ` (only ${selected.join(', ')}: ${RESULTS} is left as it was)` : ''}`);
  const failed = results.some((b) => b.error) || h.stopping;
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`bench failed: ${(err as Error).stack ?? err}`);
    const done = existsSync(h.dir)
      ? h.cleanup().then((notes) => notes.forEach((n) => console.error(n)))
      : Promise.resolve();
    void done.finally(() => process.exit(1));
  },
);
