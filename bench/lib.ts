import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';

// Small helpers for the benchmarks: running and timing commands, medians, machine details, the Markdown report.

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface StampedChunk {
  ms: number;
  text: string;
}

export interface RunOpts {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Do not throw for a non-zero exit. */
  allowFail?: boolean;
  timeoutMs?: number;
}

const running = new Set<ChildProcess>();

/** Stops the commands still running (on Ctrl-C: a qemu-io writing 8 GiB should not hold up the clean-up). */
export function stopRunning(): void {
  for (const child of running) child.kill('SIGTERM');
}

/**
 * Runs a command to completion (no shell) and measures its wall time from spawn to exit. Asynchronous on purpose: the
 * event loop turns between commands, so a Ctrl-C reaches the bench's handler (a spawnSync loop would never see it).
 */
export function run(cmd: string, args: readonly string[], opts: RunOpts = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { env: opts.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    child.on('exit', () => running.delete(child));
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 600_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}`));
    });
    child.on('close', (status, signal) => {
      const ms = performance.now() - t0;
      clearTimeout(timer);
      const code = status ?? 128;
      if (code !== 0 && !opts.allowFail) {
        reject(
          new Error(
            `\`${[cmd, ...args].join(' ')}\` exited ${code}${signal ? ` (${signal})` : ''}:\n${(stdout + stderr).trim().slice(0, 4000)}`,
          ),
        );
      } else resolve({ code, stdout, stderr, ms });
    });
  });
}

/**
 * Text that came in stamped chunks (a guest console from vms's transcript events) as one text: every character keeps
 * the arrival time of its chunk, so a pattern can be timed even when it is split over chunks (time of its last
 * character).
 */
export class StampedText {
  readonly text: string;
  private readonly ends: number[] = []; // offset just past each chunk
  private readonly times: number[] = [];

  constructor(chunks: readonly StampedChunk[]) {
    let end = 0;
    for (const c of chunks) {
      end += c.text.length;
      this.ends.push(end);
      this.times.push(c.ms);
    }
    this.text = chunks.map((c) => c.text).join('');
  }

  /** When the character at `pos` arrived. */
  timeAt(pos: number): number {
    let lo = 0;
    let hi = this.ends.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.ends[mid]! > pos) hi = mid;
      else lo = mid + 1;
    }
    return this.times[lo]!;
  }

  /** The first match of `pattern` at or after `from`: where it starts and ends, and when its last character came. */
  find(pattern: RegExp, from = 0): { index: number; end: number; ms: number; match: RegExpExecArray } | undefined {
    const re = new RegExp(pattern.source, pattern.flags.replace('g', '') + 'g');
    re.lastIndex = from;
    const m = re.exec(this.text);
    if (!m) return undefined;
    const end = m.index + m[0].length;
    return { index: m.index, end, ms: this.timeAt(end - 1), match: m };
  }
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Rotates a list by `k`: within each rep the compared commands take turns going first. */
export const rotate = <T>(xs: T[], k: number): T[] => xs.map((_, i) => xs[(i + k) % xs.length]!);

export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  return ms >= 10_000
    ? `${(ms / 1000).toFixed(1)} s`
    : ms >= 1000
      ? `${(ms / 1000).toFixed(2)} s`
      : `${ms.toFixed(1)} ms`;
}

/** One measured command: every sample kept, the median shown. */
export class Series {
  readonly samples: number[] = [];
  constructor(
    readonly label: string,
    readonly command: string,
  ) {}
  add(ms: number): void {
    this.samples.push(ms);
  }
  get median(): number {
    return median(this.samples);
  }
}

export interface Check {
  what: string;
  ratio: number;
  /** e.g. "≤ 2.5×" */
  target: string;
  pass: boolean;
}

export interface BenchResult {
  title: string;
  series: Series[];
  checks: Check[];
  notes: string[];
  error?: string;
  seconds?: number;
}

/** A ratio check: a/b must be ≤ max (or, with `atLeast`, ≥ min). */
export function ratioCheck(what: string, a: Series, b: Series, target: { max?: number; min?: number }): Check {
  const ratio = a.median / b.median;
  if (target.min !== undefined) return { what, ratio, target: `≥ ${target.min}×`, pass: ratio >= target.min };
  return { what, ratio, target: `≤ ${target.max}×`, pass: ratio <= target.max! };
}

async function tryText(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  try {
    const r = await run(cmd, args, { env, allowFail: true, timeoutMs: 20_000 });
    return (r.stdout + r.stderr).trim();
  } catch (err) {
    return `unavailable (${(err as Error).message.split('\n')[0]})`;
  }
}

export async function machineDetails(uri: string, dir: string, env: NodeJS.ProcessEnv): Promise<[string, string][]> {
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '';
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  const caps = await tryText('virsh', ['-c', uri, 'capabilities'], env);
  const kvmDev = existsSync('/dev/kvm');
  const kvm = /<domain type='kvm'/.test(caps);
  const virshVersion = (await tryText('virsh', ['-c', uri, 'version'], env))
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .join('; ');
  return [
    ['CPU', model],
    ['cores', `${os.cpus().length} (nproc ${await tryText('nproc', [])})`],
    ['memory', `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`],
    ['kernel', `${os.type()} ${os.release()} ${os.arch()}`],
    ['node', process.version],
    ['libvirt (`virsh version`)', virshVersion],
    ['qemu', (await tryText('qemu-system-x86_64', ['--version'])).split('\n')[0] ?? 'unknown'],
    ['qemu-img', (await tryText('qemu-img', ['--version'])).split('\n')[0] ?? 'unknown'],
    ['virt-clone', await tryText('virt-clone', ['--version'])],
    [
      'acceleration',
      kvm ? 'KVM' : `TCG (${kvmDev ? '/dev/kvm exists but libvirt offers no kvm domain type' : 'no /dev/kvm'})`,
    ],
    [
      'load average at start (1/5/15 min)',
      os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' / '),
    ],
    ['bench directory', dir],
  ];
}

const esc = (s: string) => s.replaceAll('|', '\\|');

export function renderMarkdown(opts: {
  date: string;
  machine: [string, string][];
  benches: BenchResult[];
  footer: string[];
}): string {
  const out: string[] = [];
  out.push('# vms benchmarks', '');
  out.push(
    `Run: ${opts.date} — generated by \`npm run bench\` (bench/run.ts). Ratios are measured side by side in one run`,
  );
  out.push(
    '(the compared commands alternate within each rep); absolute times on this machine are noisy and only indicative.',
    '',
  );
  out.push('## Machine', '', '| | |', '|---|---|');
  for (const [k, v] of opts.machine) out.push(`| ${esc(k)} | ${esc(v)} |`);
  out.push('');
  const all = opts.benches.flatMap((b) => b.checks);
  out.push('## Summary', '', '| benchmark | check | ratio | target | result |', '|---|---|---|---|---|');
  for (const b of opts.benches) {
    if (b.error) out.push(`| ${esc(b.title)} | (failed) | - | - | ERROR |`);
    for (const c of b.checks)
      out.push(
        `| ${esc(b.title)} | ${esc(c.what)} | ${c.ratio.toFixed(2)}× | ${c.target} | ${c.pass ? 'PASS' : 'MISS'} |`,
      );
  }
  out.push('', `${all.filter((c) => c.pass).length}/${all.length} checks pass.`, '');
  for (const b of opts.benches) {
    out.push(`## ${b.title}`, '');
    if (b.series.length) {
      out.push('| command | reps | median | min | max |', '|---|---|---|---|---|');
      for (const s of b.series) {
        const min = Math.min(...s.samples);
        const max = Math.max(...s.samples);
        out.push(
          `| ${esc(s.label)}: \`${esc(s.command)}\` | ${s.samples.length} | ${fmtMs(s.median)} | ${fmtMs(min)} | ${fmtMs(max)} |`,
        );
      }
      out.push('');
    }
    if (b.checks.length) {
      out.push('| check | ratio of medians | target | result |', '|---|---|---|---|');
      for (const c of b.checks)
        out.push(`| ${esc(c.what)} | ${c.ratio.toFixed(2)}× | ${c.target} | ${c.pass ? 'PASS' : 'MISS'} |`);
      out.push('');
    }
    if (b.error) out.push('**ERROR**:', '', '```', b.error, '```', '');
    for (const n of b.notes) out.push(`- ${n}`);
    if (b.seconds !== undefined) out.push(`- this benchmark took ${b.seconds.toFixed(0)} s (setup included)`);
    out.push('');
  }
  out.push(...opts.footer, '');
  return out.join('\n');
}

/** The same report as a compact console table. */
export function renderConsole(benches: BenchResult[]): string {
  const lines: string[] = [];
  for (const b of benches) {
    lines.push('', `== ${b.title}`);
    for (const s of b.series)
      lines.push(`  ${s.label.padEnd(44)} median ${fmtMs(s.median).padStart(10)}  (n=${s.samples.length})`);
    for (const c of b.checks)
      lines.push(
        `  ${(c.pass ? 'PASS' : 'MISS').padEnd(5)} ${c.what.padEnd(52)} ${c.ratio.toFixed(2).padStart(6)}×  target ${c.target}`,
      );
    if (b.error) lines.push(`  ERROR ${b.error.split('\n')[0]}`);
    for (const n of b.notes) lines.push(`  note: ${n}`);
  }
  return lines.join('\n');
}
