import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import type { StampedEvent } from '../src/core/events.js';
import { run, type BenchResult, type RunOpts, type RunResult } from './lib.js';

// What every benchmark shares: the private directory and environment of one bench run, the commands (vms, virsh,
// any tool) that stop starting after a Ctrl-C, the bench's own domains, and the clean-up. One Harness per run,
// handed to each benchmark (bench/<name>.ts); nothing is kept in module-level state.

export const ROOT = new URL('..', import.meta.url).pathname.replace(/\/$/, '');
export const URI = 'qemu:///system';
export const BASE_DIR = '/var/lib/vms-test';
export const GiB = 2 ** 30;
export const NODE = process.execPath;
export const CJS = join(ROOT, 'dist/vms.cjs');
export const BIN = join(ROOT, 'dist/vms');

/** One progress event of vms as `--events FILE` writes it, with its time since the spawn of the command (ms). */
export type BenchEvent = StampedEvent & { ms: number };

export interface EventsRun extends RunResult {
  events: BenchEvent[];
}

export class Harness {
  readonly id = randomBytes(3).toString('hex');
  readonly prefix = `bench-${this.id}-`;
  readonly dir = join(BASE_DIR, `bench-${this.id}`);
  readonly dirs = {
    images: join(this.dir, 'images'),
    state: join(this.dir, 'vms'),
    iso: join(this.dir, 'iso'),
    cache: join(this.dir, 'cache'),
    tmp: join(this.dir, 'tmp'),
  };
  readonly env: NodeJS.ProcessEnv = {
    ...process.env,
    VMS_IMAGES_DIR: this.dirs.images,
    VMS_STATE_DIR: this.dirs.state,
    VMS_ISO_DIR: this.dirs.iso,
    VMS_CACHE_DIR: this.dirs.cache,
    VMS_CONFIG: join(this.dir, 'config.json'),
    LIBVIRT_DEFAULT_URI: URI,
    NO_COLOR: '1',
  };
  /** CLI misbehaviour seen during the run, for the report. */
  readonly problems: string[] = [];
  readonly results: BenchResult[] = [];
  /** Set by a Ctrl-C: no new command starts, the running benchmark fails, the clean-up runs. */
  stopping = false;
  private readonly t0 = performance.now();
  private eventFiles = 0;

  constructor() {
    delete this.env.NODE_OPTIONS; // the children must be plain node, not node + tsx
    delete this.env.FORCE_COLOR;
  }

  elapsed = () => `${((performance.now() - this.t0) / 1000).toFixed(0)}s`;
  log = (msg: string) => console.error(`[bench ${this.elapsed()}] ${msg}`);

  /** Every command of the benchmarks goes through here: after a Ctrl-C no new one starts. */
  sh = (cmd: string, args: readonly string[], opts: RunOpts = {}) => {
    if (this.stopping) throw new Error('interrupted');
    return run(cmd, args, { env: this.env, ...opts });
  };
  vms = (args: string[], opts: RunOpts = {}) => this.sh(NODE, [CJS, ...args], opts);
  virsh = (args: string[], opts: RunOpts = {}) => this.sh('virsh', ['-c', URI, ...args], opts);
  /** virsh for the clean-up, which must run after a Ctrl-C too. */
  cleanVirsh = (args: string[]) => run('virsh', ['-c', URI, ...args], { env: this.env, allowFail: true });

  /**
   * Runs vms with `--events FILE` and reads its progress events back, each with its time since the spawn: the
   * benchmarks time steps from these, never from the human `==>` lines.
   */
  async vmsEvents(args: string[], opts: RunOpts = {}): Promise<EventsRun> {
    const file = join(this.dirs.tmp, `events-${++this.eventFiles}.ndjson`);
    const spawned = Date.now();
    const r = await this.vms(['--events', file, ...args], opts);
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    const events = text
      .split('\n')
      .filter(Boolean)
      .map((line) => {
        const e = JSON.parse(line) as StampedEvent;
        return { ...e, ms: Date.parse(e.time) - spawned };
      });
    return { ...r, events };
  }

  has = async (tool: string) => (await run('sh', ['-c', `command -v ${tool}`], { allowFail: true })).code === 0;

  freeBytes(path = this.dir): number {
    const s = statfsSync(path);
    return s.bavail * s.bsize;
  }

  /** This run's domains (named with its prefix). */
  async myDomains(): Promise<string[]> {
    return (await this.cleanVirsh(['list', '--all', '--name'])).stdout
      .split('\n')
      .map((s) => s.trim())
      .filter((s) => s.startsWith(this.prefix));
  }

  /** The file of a domain's first disk, from its persistent definition. */
  async diskOf(name: string): Promise<string> {
    const xml = (await this.virsh(['dumpxml', name, '--inactive'])).stdout;
    const m = /<disk[^>]*device='disk'[^>]*>[\s\S]*?<source file='([^']+)'/.exec(xml);
    if (!m) throw new Error(`no disk in ${name}'s definition`);
    return m[1]!;
  }

  async undefineQuietly(name: string): Promise<void> {
    await this.cleanVirsh(['destroy', name]);
    if ((await this.cleanVirsh(['undefine', name, '--nvram'])).code !== 0) await this.cleanVirsh(['undefine', name]);
  }

  /** `vms destroy NAME --yes`; should it fail, the failure is reported and the VM is removed by hand. */
  async destroyVm(name: string): Promise<void> {
    const d = await this.vms(['destroy', name, '--yes', '--json'], { allowFail: true });
    if (d.code === 0) return;
    this.problems.push(
      `\`vms destroy ${name} --yes --json\` exited ${d.code}: ${(d.stdout + d.stderr).trim().slice(0, 300)}`,
    );
    const file = await this.diskOf(name);
    await this.undefineQuietly(name);
    rmSync(file, { force: true });
    rmSync(join(this.dirs.state, name), { recursive: true, force: true });
  }

  /** Runs one benchmark into the results; a failure is recorded and the next benchmark still runs. */
  async bench(title: string, body: (b: BenchResult) => Promise<unknown>): Promise<void> {
    if (this.stopping) return;
    const b: BenchResult = { title, series: [], checks: [], notes: [] };
    this.results.push(b);
    const start = performance.now();
    this.log(`== ${title}`);
    try {
      await body(b);
    } catch (err) {
      b.error = this.stopping ? `interrupted (${(err as Error).message.split('\n')[0]})` : (err as Error).message;
      // The remaining benchmarks still run (unless interrupted), the report is still written.
      this.log(`FAILED: ${b.error}`);
    } finally {
      b.seconds = (performance.now() - start) / 1000;
    }
  }

  /** Removes every domain of this run, any storage pool virt-clone registered in its dir, and the dir. */
  async cleanup(): Promise<string[]> {
    const notes: string[] = [];
    try {
      for (const d of await this.myDomains()) await this.undefineQuietly(d);
      const left = await this.myDomains();
      if (left.length) notes.push(`cleanup: could not undefine ${left.join(', ')}`);
    } catch (err) {
      notes.push(`cleanup: listing domains failed: ${(err as Error).message}`);
    }
    try {
      // virt-clone registers a storage pool for the directory it wrote to: remove any pool of ours.
      const pools = (await this.cleanVirsh(['pool-list', '--all', '--name'])).stdout
        .split('\n')
        .map((s) => s.trim())
        .filter(Boolean);
      for (const p of pools) {
        const xml = (await this.cleanVirsh(['pool-dumpxml', p])).stdout;
        const path = /<path>([^<]+)<\/path>/.exec(xml)?.[1];
        if (path && (path === this.dir || path.startsWith(this.dir + '/'))) {
          await this.cleanVirsh(['pool-destroy', p]);
          await this.cleanVirsh(['pool-undefine', p]);
          notes.push(`cleanup: removed libvirt storage pool '${p}' (${path}) that virt-clone had registered`);
        }
      }
    } catch (err) {
      notes.push(`cleanup: pools: ${(err as Error).message}`);
    }
    rmSync(this.dir, { recursive: true, force: true });
    if (existsSync(this.dir)) notes.push(`cleanup: ${this.dir} is still there`);
    return notes;
  }
}

/** A benchmark: fills in its result (series, checks, notes) using the harness. */
export type Benchmark = (h: Harness, b: BenchResult) => Promise<void>;
