import { VmsError } from '../../errors.js';
import type { DomainState } from '../../libvirt/virsh.js';
import type { Context } from '../context.js';
import { loginAsRoot, openTranscript, powerOffFromGuest, runProfiles } from './guest-session.js';
import { loadCatalog, profileChain } from './profiles.js';
import { withUndo } from '../ops/undo.js';
import { isActive, loadVm, requireDrivable } from '../vm/vm.js';
import { readVmSecrets, vmFiles } from '../vm/vm-files.js';
import { shellQuote as q } from '../../quote.js';
import { undoOptions, withOperation } from '../ops/operation.js';

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
  return withOperation(ctx, { command: 'apply', vms: [name] }, async (ctx) => {
    const { progress, virsh } = ctx;
    const vm = await loadVm(ctx, name);
    const { state, facts } = vm;
    const files = vmFiles(ctx.config, name);
    const catalog = loadCatalog(ctx.config);
    const chain = profileChain(catalog, profile);
    if (facts.metadata.pending) {
      const message = `${name} is an unfinished create (its ${facts.metadata.pending} step)`;
      throw new VmsError('conflict', message, 'finish its create first', undefined, 'apply.unfinished', { name });
    }
    requireDrivable(vm);
    const { password, settings } = await readVmSecrets(files, name);
    const wasRunning = isActive(state);
    const transcript = openTranscript(ctx, files.applyLog, `vms apply ${q(name)} ${q(profile)}`);
    try {
      await withUndo(async (undo) => {
        if (!wasRunning) {
          await undo.add(`power ${name} off again`, { kind: 'power-off', vm: name }); // as it was found
          await progress.step(`Starting ${name}`, () => virsh.start(name));
        }
        const session = await progress.step('Logging in on the serial console', () =>
          loginAsRoot(ctx, files, transcript, password),
        );
        try {
          await runProfiles(ctx, session, chain, catalog.libs, settings, transcript);
          if (wasRunning)
            session.console.send('exit\r'); // leave no root shell open on the console
          else await progress.step(`Powering off ${name} again`, () => powerOffFromGuest(ctx, session, name));
        } finally {
          session.close();
        }
      }, undoOptions(ctx));
    } finally {
      await transcript.close();
    }
    return {
      name,
      profile,
      applied: chain.map((p) => p.name),
      state: await virsh.state(name),
      transcript: transcript.path,
    };
  });
}
