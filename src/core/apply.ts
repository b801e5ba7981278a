import { readFile } from 'node:fs/promises';
import { conflict, notFound } from '../errors.js';
import type { DomainState } from '../libvirt/virsh.js';
import type { Context } from './context.js';
import { loginAsRoot, openTranscript, powerOffFromGuest, runProfiles } from './guest-session.js';
import { loadCatalog, profileChain } from './profiles.js';
import { isActive, loadVm } from './vm.js';
import { vmFiles } from './vm-files.js';

// `vms apply NAME PROFILE`: runs a profile chain on an existing VM over its console, and leaves the VM as it found it
// (a shut-off VM is started for it and powered off again).

export interface ApplyResult {
  name: string;
  profile: string;
  applied: string[]; // the chain, parents first
  state: DomainState;
  transcript: string;
}

export async function applyProfile(ctx: Context, name: string, profile: string): Promise<ApplyResult> {
  const { progress, virsh } = ctx;
  const { state } = await loadVm(ctx, name);
  const files = vmFiles(ctx.config, name);
  const catalog = loadCatalog(ctx.config);
  const chain = profileChain(catalog, profile);
  if (state === 'paused' || state === 'pmsuspended') throw conflict(`${name} is ${state}`, `\`virsh resume ${name}\` first`);
  let password: string;
  let settings: string;
  try {
    password = (await readFile(files.password, 'utf8')).trim();
    settings = await readFile(files.settings, 'utf8');
  } catch {
    throw notFound(`${name} has no root password or settings in ${files.dir}`, 'profiles can be applied only to VMs that `vms create` installed');
  }
  const wasRunning = isActive(state);
  const transcript = openTranscript(ctx, files.applyLog, `vms apply ${name} ${profile}`);
  try {
    if (!wasRunning) await progress.step(`Starting ${name}`, () => virsh.start(name));
    const session = await progress.step('Logging in on the serial console', () => loginAsRoot(ctx, files, transcript, password));
    try {
      await runProfiles(ctx, session, chain, catalog.libs, settings, transcript);
      if (!wasRunning) await progress.step(`Powering off ${name} again`, () => powerOffFromGuest(ctx, session, name));
    } finally {
      session.close();
    }
  } finally {
    await transcript.close();
  }
  return { name, profile, applied: chain.map((p) => p.name), state: await virsh.state(name), transcript: transcript.path };
}
