import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, CJS, NODE, URI, type Harness } from './harness.js';
import { fmtMs, ratioCheck, rotate, Series, type BenchResult } from './lib.js';

// 3. `vms list --json` with 30 domains against 3, and against `node -e 0`. What `vms list` does (src/core/vm/list.ts):
// one `virsh domstats --raw --state --balloon --vcpu --block` for every domain's state, memory, vCPUs and disk size,
// then ONE batch virsh that reads each domain's vms metadata (`dumpxml D --inactive --xpath /domain/metadata/*`):
// two virsh processes whatever the number of domains. The reference rows run those two the same way.

async function createTiny(h: Harness, name: string): Promise<void> {
  await h.vms([
    'create',
    name,
    '--bare',
    '--json',
    '--network',
    'none',
    '--no-graphics',
    '--disk',
    '64M',
    '--memory',
    '256M',
    '--cpus',
    '1',
  ]);
}

/** The processes one `vms list --json` starts: by strace (every successful execve), and by `-v`'s `$ ...` lines. */
async function countProcesses(h: Harness, label: string, useStrace: boolean, b: BenchResult): Promise<number> {
  const viaVerbose = (await h.vms(['list', '--json', '-v'])).stderr.split('\n').filter((l) => l.startsWith('$ '));
  if (!useStrace) {
    b.notes.push(
      `${label}: \`vms list --json -v\` ran ${viaVerbose.length} commands: ${viaVerbose.map((l) => `\`${l.slice(2, 40)}…\``).join(', ')} (strace not installed)`,
    );
    return viaVerbose.length;
  }
  const counts: number[] = [];
  for (const [what, cmd, args] of [
    ['node dist/vms.cjs', NODE, [CJS, 'list', '--json']],
    ['dist/vms', BIN, ['list', '--json']],
  ] as const) {
    const file = join(h.dirs.tmp, `strace-${counts.length}-${label.replace(/\W/g, '')}.txt`);
    await h.sh('strace', ['-f', '-qq', '-e', 'trace=execve', '-e', 'signal=none', '-o', file, cmd, ...args]);
    const execs = successfulExecs(readFileSync(file, 'utf8')).slice(1); // [0] is the CLI itself
    counts.push(execs.length);
    b.notes.push(
      `${label}: \`${what} list --json\` started ${execs.length} processes (strace -f, successful execve): ${execs.map((e) => `\`${e}\``).join(', ')}`,
    );
  }
  b.notes.push(`${label}: \`vms list --json -v\` printed ${viaVerbose.length} \`$ command\` lines.`);
  if (new Set([...counts, viaVerbose.length]).size !== 1)
    b.notes.push(`${label}: the counts disagree: ${counts.join(', ')}, -v ${viaVerbose.length}`);
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

export async function listScaling(h: Harness, b: BenchResult): Promise<void> {
  for (const d of await h.myDomains()) await h.undefineQuietly(d); // only this bench's own domains are to be listed
  const names = Array.from({ length: 30 }, (_, i) => `${h.prefix}l${String(i + 1).padStart(2, '0')}`);
  const t = performance.now();
  for (const n of names) await createTiny(h, n);
  h.log(`30 domains defined with vms create --bare in ${fmtMs(performance.now() - t)}`);
  // Switching between 3 and 30: the other 27 are undefined and defined again from their saved XML, in one virsh each.
  const extra = names.slice(3);
  const xmlFiles: string[] = [];
  for (const n of extra) {
    const f = join(h.dirs.tmp, `${n}.xml`);
    writeFileSync(f, (await h.virsh(['dumpxml', n, '--inactive'])).stdout);
    xmlFiles.push(f);
  }
  const showAll = () => h.virsh([xmlFiles.map((f) => `define ${f}`).join('; ')]);
  const hideExtra = () => h.virsh([extra.map((n) => `undefine ${n}`).join('; ')]);

  const node0 = new Series('node -e 0', 'node -e 0');
  const help = new Series('reference: bundle loaded, no libvirt', 'node dist/vms.cjs --help');
  const DOMSTATS = ['domstats', '--raw', '--state', '--balloon', '--vcpu', '--block'];
  const domstats = {
    3: new Series('reference: virsh domstats (3)', `virsh -c qemu:///system ${DOMSTATS.join(' ')}`),
    30: new Series('reference: virsh domstats (30)', `virsh -c qemu:///system ${DOMSTATS.join(' ')}`),
  };
  // The one batch virsh that `vms list` runs after domstats (src/core/vm/list.ts + Virsh.batch), built the same way.
  const batchScript = (n: number) =>
    names
      .slice(0, n)
      .map((d, i) => `echo @@m@@${i}; dumpxml ${d} --inactive --xpath "/domain/metadata/*"`)
      .join('; ') + '; echo @@m@@end';
  const shown = 'virsh -c qemu:///system "echo …; dumpxml D --inactive --xpath \'/domain/metadata/*\'; …"';
  const batch = {
    3: new Series('reference: the metadata batch of vms list (3)', `${shown} (3 domains)`),
    30: new Series('reference: the metadata batch of vms list (30)', `${shown} (30 domains)`),
  };
  const s = {
    3: {
      cjs: new Series('bundle, 3 domains', 'node dist/vms.cjs list --json'),
      bin: new Series('binary, 3 domains', 'dist/vms list --json'),
    },
    30: {
      cjs: new Series('bundle, 30 domains', 'node dist/vms.cjs list --json'),
      bin: new Series('binary, 30 domains', 'dist/vms list --json'),
    },
  };
  b.series.push(node0, s[3].cjs, s[30].cjs, s[3].bin, s[30].bin, help, domstats[3], batch[3], domstats[30], batch[30]);
  const listed: Record<3 | 30, number[]> = { 3: [], 30: [] };
  const processes: Record<3 | 30, number> = { 3: NaN, 30: NaN };
  const useStrace = await h.has('strace');

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
      if (round === 0) processes[want] = await countProcesses(h, `${want} domains`, useStrace, b);
      type Cmd = [Series | undefined, string, string[]];
      const cmds: Cmd[] = [
        [node0, NODE, ['-e', '0']],
        [s[want].cjs, NODE, [CJS, 'list', '--json']],
        [s[want].bin, BIN, ['list', '--json']],
        [help, NODE, [CJS, '--help']],
        [domstats[want], 'virsh', ['-c', URI, ...DOMSTATS]],
        [batch[want], 'virsh', ['-c', URI, batchScript(want)]],
      ];
      for (let rep = -1; rep < PER_STATE; rep++) {
        for (const [series, cmd, args] of rotate(cmds, rep + 1 + round)) {
          const r = await h.sh(cmd, args);
          if (args.includes('--json')) {
            const all = JSON.parse(r.stdout) as { name: string }[];
            const mine = all.filter((v) => v.name.startsWith(h.prefix)).length;
            if (mine !== want) throw new Error(`vms list showed ${mine} of this bench's domains, expected ${want}`);
            listed[want].push(all.length);
          }
          if (rep >= 0 && series) series.add(r.ms); // rep -1 warms up after each switch
        }
      }
    }
  }
  const range = (xs: number[]) =>
    Math.min(...xs) === Math.max(...xs) ? `${xs[0]}` : `${Math.min(...xs)}–${Math.max(...xs)}`;
  b.checks.push(ratioCheck('bundle list, 30 domains / node -e 0', s[30].cjs, node0, { max: 2.5 }));
  b.checks.push(ratioCheck('binary list, 30 domains / node -e 0', s[30].bin, node0, { max: 2.5 }));
  b.checks.push(ratioCheck('bundle list, 30 domains / 3 domains', s[30].cjs, s[3].cjs, { max: 1.3 }));
  b.checks.push(ratioCheck('binary list, 30 domains / 3 domains', s[30].bin, s[3].bin, { max: 1.3 }));
  const same = processes[3] === processes[30];
  b.checks.push({
    what: 'processes spawned, 30 domains / 3 domains',
    ratio: processes[30] / processes[3],
    target: '= 1× (same count)',
    pass: same,
  });
  const others = Math.max(...listed[3]) > 3 || Math.max(...listed[30]) > 30;
  b.notes.push(
    `"3"/"30 domains" are this bench's own domains; \`vms list\` shows every domain on ${URI}: the lists had ${range(listed[3])} entries with 3 of ours and ${range(listed[30])} with 30 of ours${others ? " (other sessions' test domains were defined too)" : ' (no other domains were defined during the run)'}.`,
    `${ROUNDS} rounds of (3 domains: ${PER_STATE} reps, 30 domains: ${PER_STATE} reps), each state warmed up by one discarded rep; 27 domains are undefined/redefined from their saved XML between states. node -e 0 is pooled over both states.`,
    `reference rows (no targets): \`node dist/vms.cjs --help\` loads the bundle and exits without libvirt; \`virsh domstats\` and the metadata batch are the two virsh processes \`vms list\` runs, one after the other, whatever the number of domains.`,
  );
  for (const n of [3, 30] as const) {
    const floor = help.median + domstats[n].median + batch[n].median;
    b.notes.push(
      `${n} domains: bundle load + virsh domstats + virsh batch = ${fmtMs(help.median)} + ${fmtMs(domstats[n].median)} + ${fmtMs(batch[n].median)} = ${fmtMs(floor)}; \`node dist/vms.cjs list --json\` took ${fmtMs(s[n].cjs.median)}, so ${fmtMs(s[n].cjs.median - floor)} went to vms's own work in between (loading execa, parsing the XML, etc.).`,
    );
  }
  for (const n of names) await h.undefineQuietly(n);
}
