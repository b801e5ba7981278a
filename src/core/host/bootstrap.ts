import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { templateSource } from '../../bundled.js';
import { VmsError } from '../../errors.js';
import { errorSummary, formatCommand } from '../../runner.js';
import type { Context } from '../context.js';
import { findVirtiofsd } from './programs.js';
import { ARCH_ISO } from '../storage/iso.js';
import {
  detectDistro,
  installCommands,
  missingPackages,
  PACKAGES,
  queryCommand,
  type Distro,
} from './host-packages.js';
import { processAlive } from './file-lock.js';
import { LIBVIRT_GROUP, libvirtGroup } from './libvirt-group.js';
import { SYSTEM_URI, Virsh, defaultNetworkLines, networkLineCheck } from '../../libvirt/virsh.js';
import { parseNetInfo } from '../../libvirt/virsh-output.js';

// `vms bootstrap`: from a fresh host to one that can run `vms create`. First the host is read (nothing changes), then
// a plan is made of it (pure, so each package manager's path is tested on recorded answers), then the plan runs,
// step by step, each step's commands said before they run. A step with nothing to do says why, so a second run
// changes nothing and shows it.

export interface HostState {
  distro: Distro;
  root: boolean;
  /** The person vms is set up for: SUDO_USER under sudo, else the user; none when root runs it for itself. */
  user?: string;
  userInGroup: boolean;
  missing: string[];
  /** Optional packages this release does not have (Debian 12 has no virtiofsd package: QEMU brings it). */
  unavailable: string[];
  virtiofsd: boolean;
  systemd: boolean;
  libvirtdRunning: boolean;
  virtlogdRunning: boolean;
  dirs: { path: string; ok: boolean }[];
  /** unknown: libvirtd did not answer (stopped, or not allowed yet), so whether it exists is found out when it runs. */
  network: 'active' | 'inactive' | 'undefined' | 'unknown';
  networkAutostart: boolean;
  isoPresent: boolean;
}

export interface BootstrapOptions {
  network: boolean; // start the default network (--no-network: define it only)
}

export interface BootstrapStep {
  name: 'packages' | 'daemons' | 'group' | 'dirs' | 'network' | 'iso';
  /** What the step does, or why there is nothing to do. */
  summary: string;
  /** Run in order; empty when there is nothing to do. */
  commands: string[][];
  /** Said after the step ran (a re-login, a next command). */
  after?: string;
}

/** Group-writable for libvirt members (setgid: new files stay in the group), reachable by the qemu user. */
const DIR_MODE = 0o2775;

/** Debian 12 ships virtiofsd inside QEMU's own package; newer releases split it out. */
const OPTIONAL: Record<Distro, string[]> = { arch: [], debian: ['virtiofsd'], fedora: [] };

function daemonCommands(s: HostState): string[][] {
  if (s.systemd) {
    // Fedora runs libvirt as modular daemons; Arch and Debian keep the monolithic libvirtd.
    const units =
      s.distro === 'fedora'
        ? ['virtqemud.socket', 'virtnetworkd.socket', 'virtstoraged.socket', 'virtlogd.socket']
        : ['libvirtd.service', 'virtlogd.socket'];
    return [['systemctl', 'enable', '--now', ...units]];
  }
  // No systemd (containers, CI): the daemons are started directly, as their units would.
  return [...(s.virtlogdRunning ? [] : [['virtlogd', '-d']]), ['libvirtd', '-d']];
}

/** Pure: the steps that take this host to a ready one. */
export function planBootstrap(s: HostState, opts: BootstrapOptions, defaultNetworkXml: string): BootstrapStep[] {
  const sudo = (cmds: string[][]) => (s.root ? cmds : cmds.map((c) => ['sudo', ...c]));
  const steps: BootstrapStep[] = [];

  const wanted = s.missing.filter(
    (p) => !(OPTIONAL[s.distro].includes(p) && (s.virtiofsd || s.unavailable.includes(p))),
  );
  steps.push(
    wanted.length
      ? { name: 'packages', summary: `install ${wanted.join(', ')}`, commands: sudo(installCommands(s.distro, wanted)) }
      : { name: 'packages', summary: 'the packages vms needs are installed', commands: [] },
  );

  steps.push(
    s.libvirtdRunning
      ? { name: 'daemons', summary: 'libvirtd is running: left alone', commands: [] }
      : {
          name: 'daemons',
          summary: s.systemd ? 'enable and start libvirt (systemd)' : 'start virtlogd and libvirtd (no systemd here)',
          commands: sudo(daemonCommands(s)),
        },
  );

  if (!s.user) steps.push({ name: 'group', summary: 'running as root for root: no group to join', commands: [] });
  else if (s.userInGroup)
    steps.push({ name: 'group', summary: `${s.user} is in the ${LIBVIRT_GROUP} group`, commands: [] });
  else {
    steps.push({
      name: 'group',
      summary: `add ${s.user} to the ${LIBVIRT_GROUP} group`,
      commands: sudo([['usermod', '-aG', LIBVIRT_GROUP, s.user]]),
      after: `${s.user} must log out and in again (or run \`newgrp ${LIBVIRT_GROUP}\`) for the group to count`,
    });
  }

  const dirs = s.dirs.filter((d) => !d.ok).map((d) => d.path);
  steps.push(
    dirs.length
      ? {
          name: 'dirs',
          summary: `create ${dirs.join(', ')} for the ${LIBVIRT_GROUP} group, reachable by the qemu user`,
          commands: sudo([
            ['mkdir', '-p', ...dirs],
            ['chgrp', LIBVIRT_GROUP, ...dirs],
            ['chmod', DIR_MODE.toString(8), ...dirs],
          ]),
        }
      : { name: 'dirs', summary: `${s.dirs.map((d) => d.path).join(', ')} are ready`, commands: [] },
  );

  const net: string[][] = [];
  const mayBeMissing = s.network === 'undefined' || s.network === 'unknown';
  const lines = defaultNetworkLines;
  if (mayBeMissing) net.push(lines.define(defaultNetworkXml)); // skipped at run time when it exists (runBootstrap)
  if (mayBeMissing || !s.networkAutostart) net.push(lines.autostart());
  if (opts.network && s.network !== 'active') net.push(lines.start());
  const netSummary = net.length
    ? `${s.network === 'undefined' ? 'define' : s.network === 'unknown' ? 'define (unless it exists)' : 'set up'} the default NAT network${opts.network ? '' : ' (not started: --no-network)'}`
    : `the default network is ${s.network === 'active' ? 'active' : 'defined'}${opts.network || s.network === 'active' ? '' : ' (not started: --no-network)'}`;
  steps.push({ name: 'network', summary: netSummary, commands: sudo(net) });

  steps.push(
    s.isoPresent
      ? { name: 'iso', summary: 'the Arch ISO is there', commands: [] }
      : { name: 'iso', summary: 'no Arch ISO yet', commands: [], after: '`vms iso fetch` downloads and verifies it' },
  );
  return steps;
}

function dirReady(path: string, gid: number | undefined): boolean {
  try {
    const st = statSync(path);
    return st.isDirectory() && st.gid === gid && (st.mode & DIR_MODE) === DIR_MODE;
  } catch {
    return false;
  }
}

/** What readHostState learns of the machine other than through its runner (tests give recorded facts). */
export interface HostFacts {
  /** A file's text; throws when there is none. */
  read(path: string): string;
  /** Whether a process of this pid runs. */
  alive(pid: number): boolean;
  /** Whether a virtiofsd binary is installed (PATH: where else to look). */
  virtiofsd(path: string | undefined): boolean;
}

export const thisMachine: HostFacts = {
  read: (path) => readFileSync(path, 'utf8'),
  alive: processAlive,
  virtiofsd: (path) => findVirtiofsd(path) !== undefined,
};

const pidRunning = (facts: HostFacts, pidFile: string) => {
  let pid = 0;
  try {
    pid = Number(facts.read(pidFile).trim());
  } catch {
    // no pid file: not running
  }
  return pid > 0 && facts.alive(pid);
};

/** Reads the host without changing anything, for the user ctx.host names. */
export async function readHostState(ctx: Context, facts: HostFacts = thisMachine): Promise<HostState> {
  const { read } = facts;
  const { env } = ctx.host;
  const distro = detectDistro(read('/etc/os-release'));
  const root = ctx.host.uid === 0;
  const person = env.SUDO_USER && env.SUDO_USER !== 'root' ? env.SUDO_USER : root ? undefined : env.USER;
  const pkgs = [...PACKAGES[distro]];
  const query = queryCommand(distro, pkgs);
  const answer = await ctx.runner.run(query[0]!, query.slice(1), { signal: ctx.signal });
  const group = libvirtGroup(read('/etc/group'));
  const system = new Virsh(ctx.runner, SYSTEM_URI, ctx.signal);
  const libvirtdRunning = await system.answers(10_000);
  let network: HostState['network'] = 'unknown';
  let networkAutostart = false;
  if (libvirtdRunning) {
    const info = await system.networkState('default');
    network = !info ? 'undefined' : info.active ? 'active' : 'inactive';
    networkAutostart = info?.autostart ?? false;
  }
  const virtiofsd = facts.virtiofsd(env.PATH);
  const unavailable: string[] = [];
  for (const p of virtiofsd ? [] : OPTIONAL[distro]) {
    const policy = await ctx.runner.run('apt-cache', ['policy', p], { signal: ctx.signal });
    if (!/Candidate: (?!\(none\))\S/.test(policy.stdout)) unavailable.push(p);
  }
  const c = ctx.config;
  const dirs = [c.imagesDir.value, c.isoDir.value, c.stateDir.value, c.cacheDir.value];
  return {
    distro,
    root,
    user: person,
    userInGroup: person !== undefined && group !== undefined && group.members.includes(person),
    missing: missingPackages(distro, pkgs, answer),
    unavailable,
    virtiofsd,
    systemd: read('/proc/1/comm').trim() === 'systemd',
    libvirtdRunning,
    virtlogdRunning: pidRunning(facts, '/run/virtlogd.pid'),
    dirs: dirs.map((path) => ({ path, ok: dirReady(path, group?.gid) })),
    network,
    networkAutostart,
    isoPresent: existsSync(join(c.isoDir.value, ARCH_ISO)),
  };
}

/**
 * The network's state was read before libvirt ran (or was installed): a package may have defined and started it since.
 * Asked again right before `net-define` / `net-start`, which fail on a network that exists / is active.
 */
async function networkAlreadyThere(ctx: Context, cmd: string[]): Promise<boolean> {
  const check = networkLineCheck(cmd);
  if (!check) return false;
  const info = await ctx.runner.run(check.info[0]!, check.info.slice(1), { signal: ctx.signal });
  const there = check.makes === 'defined' ? info.exitCode === 0 : parseNetInfo(info.stdout).active;
  if (there) ctx.progress.note(`libvirt's default network is ${check.makes} already`);
  return there;
}

/** Runs the plan's commands, step by step; the first failure stops it with the command and its error. */
async function runBootstrap(ctx: Context, steps: BootstrapStep[]): Promise<void> {
  for (const step of steps) {
    if (step.commands.length === 0) continue;
    await ctx.progress.step(`${step.name}: ${step.summary}`, async () => {
      for (const cmd of step.commands) {
        ctx.signal?.throwIfAborted(); // between commands: a package manager is never killed mid-transaction
        if (await networkAlreadyThere(ctx, cmd)) continue;
        ctx.progress.note(`$ ${formatCommand(cmd[0]!, cmd.slice(1))}`);
        const failed = (why: string) =>
          new VmsError(
            'failed',
            `${step.name}: \`${formatCommand(cmd[0]!, cmd.slice(1))}\` failed: ${why}`,
            'fix what it says and run `vms bootstrap` again: the steps already done are skipped',
          );
        if (cmd[0] === 'sudo') {
          // On the user's terminal: sudo may ask for a password, and the package manager shows its own progress.
          const code = await ctx.runner.interactive(cmd[0], cmd.slice(1));
          if (code !== 0) throw failed(`exit status ${code}`);
          continue;
        }
        const r = await ctx.runner.run(cmd[0]!, cmd.slice(1), {
          signal: step.name === 'packages' ? undefined : ctx.signal,
          timeoutMs: 30 * 60_000,
        });
        if (r.exitCode !== 0) throw failed(errorSummary(r));
      }
    });
  }
}

const SHIPPED_NETWORK = '/usr/share/libvirt/networks/default.xml';

/** vms' own copy of the default network, for hosts whose libvirt ships none: written into a private temp dir. */
const OWN_NETWORK = join(tmpdir(), `vms-${process.pid}`, 'default-network.xml');

/** The default network's XML: the one libvirt's package ships, else vms' own copy (`shipped`: tests name another). */
export function defaultNetworkXmlPath(shipped = SHIPPED_NETWORK): string {
  return existsSync(shipped) ? shipped : OWN_NETWORK;
}

/** Reads the host, plans, and (unless only planning) runs the plan. */
export async function planHost(
  ctx: Context,
  opts: BootstrapOptions,
  facts: HostFacts = thisMachine,
): Promise<{ state: HostState; steps: BootstrapStep[] }> {
  const state = await ctx.progress.step('Reading the host', () => readHostState(ctx, facts));
  return { state, steps: planBootstrap(state, opts, defaultNetworkXmlPath()) };
}

/** Runs the plan; `shipped` is where libvirt's package keeps the default network (tests name another). */
export async function applyBootstrap(ctx: Context, steps: BootstrapStep[], shipped = SHIPPED_NETWORK): Promise<void> {
  const xml = defaultNetworkXmlPath(shipped);
  const own = xml === OWN_NETWORK && steps.some((s) => s.commands.some((c) => c.includes(xml)));
  if (own) {
    await mkdir(dirname(xml), { mode: 0o700 }); // fails if it exists: nobody else's file is ever used
    await writeFile(xml, templateSource('default-network.xml'));
  }
  try {
    await runBootstrap(ctx, steps);
  } finally {
    if (own) await rm(dirname(xml), { recursive: true, force: true });
  }
}
