import { describeNeedsOff, type NeedsOff } from '../core/vm/set.js';
import { VmsError } from '../errors.js';
import { shellQuote as q } from '../quote.js';

// The core says what went wrong in words any caller can use, and carries a reason and data; the command line's own
// words (its flags: --restart, --keep-failed, -v …) are added here, at the top, as the GitHub CLI does. Each rule
// decides on the error's reason or data, never on its text.

interface Words {
  message?: string;
  /** Replaces the core's hint; `null` leaves none. */
  hint?: string | null;
}

/** "--memory 8G (above the 4G it was started with)", "--displays": a change a running VM cannot take, as a flag. */
export const needsOffFlag = (n: NeedsOff) => `--${describeNeedsOff(n)}`;

type Data = Readonly<Record<string, unknown>>;

const SERIAL_BACKENDS =
  'use file:/abs/path, unix:/abs/path or tcp:HOST:PORT (add --server for QEMU to listen on the socket)';
const OTHER_MIRROR =
  'pick another mirror with --mirror URL or VMS_MIRROR (its iso/latest/ directory; list: https://archlinux.org/download/)';

const BY_REASON: Record<string, (data: Data) => Words> = {
  unexpected: () => ({ hint: 'run again with -v to see the commands run' }),
  'set.nothing': () => ({ hint: 'give --memory, --cpus, --displays, --rename or --notes' }),
  'set.noGraphics': () => ({ hint: 'it was created with --no-graphics' }),
  'set.needsOff': (d) => {
    const name = d.name as string;
    return {
      message:
        `${name} is running: changing ${(d.needsOff as NeedsOff[]).map(needsOffFlag).join(' and ')} ` +
        'requires the VM to be shut off; use --restart',
      hint:
        '--restart shuts it down (ACPI), applies everything and starts it again; ' +
        `or \`vms stop ${q(name)}\` first. Nothing was changed.`,
    };
  },
  'set.shutdownTimeout': (d) => ({
    hint:
      'the guest may ignore ACPI: wait longer with --timeout, ' +
      `or power it off with \`vms stop ${q(d.name as string)} --force\` and run this again`,
  }),
  'power.stopTimeout': () => ({
    hint: 'the guest may ignore ACPI: wait longer with --timeout, add --force to power it off, or `vms kill` it',
  }),
  'kernelBoot.noKernel': () => ({ message: '--initrd and --cmdline need --kernel', hint: null }),
  'clone.foreignDisk': ({ source, target }) => ({
    hint: `use --full for an independent copy, or \`vms disk detach ${q(source as string)} ${target as string}\` first`,
  }),
  'clone.notQcow2': () => ({ hint: 'use --full for an independent copy' }),
  'clone.fullRunning': (d) => ({
    hint: `\`vms stop ${q(d.source as string)}\` first, or drop --full for an instant linked clone`,
  }),
  'snapshot.internalNeedsQcow2': () => ({
    hint: 'use --external: the disk is kept as it is and the VM goes on from a qcow2 overlay on top of it',
  }),
  'snapshot.uefiInternal': (d) => ({
    hint:
      `use --external, or shut ${d.vm as string} off first: ` +
      'an internal snapshot of a shut-off UEFI VM works (its disks, without the NVRAM)',
  }),
  'vm.paused': (d) => ({ hint: `\`vms resume ${q(d.name as string)}\` first` }),
  'set.unfinished': (d) => ({
    hint: `finish it with \`vms create ${q(d.name as string)} --resume\` (or destroy it) first`,
  }),
  'apply.unfinished': (d) => ({ hint: `\`vms create ${q(d.name as string)} --resume\` finishes it first` }),
  'user.invalid': () => ({ hint: 'use a lowercase Linux user name other than root, for example --user alice' }),
  'sshKey.notFound': () => ({ hint: 'pass a public key file (.pub) with --ssh-key' }),
  'iso.notIso': () => ({ hint: 'pass an ISO image with --iso' }),
  'disk.inUseReadable': (d) => ({
    hint: `${d.copy as string}, or attach it with --readonly: the VMs that use it only read it`,
  }),
  'disk.readonlySata': () => ({ hint: 'use --bus virtio or scsi' }),
  'disk.readOnlyFile': () => ({ hint: 'attach it with --readonly, or attach a copy of it' }),
  'disk.notDeletable': () => ({ hint: 'nothing was changed; detach it without --delete to keep the file' }),
  'nic.badMac': () => ({
    hint: "give six hex pairs such as 52:54:00:12:34:56 (52:54:00 is QEMU's prefix), or --mac auto",
  }),
  'nic.twoSources': () => ({ message: 'give only one of --network, --bridge and --user' }),
  'nic.badNetwork': () => ({ hint: 'name a libvirt network (`virsh net-list --all`), or use --user' }),
  'nic.networkMissing': (d) => ({ hint: `${d.how as string}; or use --user (no libvirt network needed)` }),
  'nic.noBridge': () => ({ hint: '`ip link show type bridge` lists the bridges; or use --user' }),
  'nic.macTaken': () => ({ hint: 'give another --mac, or leave it out and libvirt picks one' }),
  'serial.badBackend': () => ({ hint: SERIAL_BACKENDS }),
  'serial.serverFile': () => ({
    message: '--server is for unix: and tcp: backends: QEMU appends to a file',
    hint: SERIAL_BACKENDS,
  }),
  'mount.systemDir': () => ({
    hint: 'share a directory of your own (your home or one below it is fine), or add --allow-system-dir if you mean it',
  }),
  'mount.tempShutOff': (d) => ({
    message: `${d.name as string} is shut off: --temp mounts only into a running VM`,
    hint: `\`vms start ${q(d.name as string)}\` first, or drop --temp`,
  }),
  'mount.notEmpty': () => ({
    hint: 'pick an empty or new directory, or add --force (the files come back after `vms umount`)',
  }),
  'mount.needsRestart': () => ({
    hint:
      'add --restart to have vms power it off, add shared memory to its definition and start it again; ' +
      'nothing was changed',
  }),
};

/** Words that hang on what an error carries whatever its reason (a failed install keeps the cause's reason). */
function byData(data: Data): Words | undefined {
  const kept = data.kept as { name: string; password: string } | undefined;
  if (kept) {
    const name = q(kept.name);
    return {
      hint:
        `kept for inspection (--keep-failed): \`vms console ${name}\` (root password in ${kept.password}); ` +
        `go on with \`vms create ${name} --resume\`, or remove it with \`vms destroy ${name}\``,
    };
  }
  const removed = data.removed as { transcript: string; cleaned: boolean } | undefined;
  if (removed) {
    const left = removed.cleaned ? '; nothing else is left (add --keep-failed to keep the VM)' : '';
    return { hint: `the whole transcript is in ${removed.transcript}${left}` };
  }
  if (typeof data.otherMirror === 'string') return { hint: `${data.otherMirror}${OTHER_MIRROR}` };
  if (typeof data.isoDir === 'string')
    return { hint: `--iso takes an ISO 9660 image: its name in ${data.isoDir}, or its path` };
  if (data.seeCommands) return { hint: 'run again with -v to see the commands run' };
  return undefined;
}

/** The error as the command line says it: its flags in the message and hint where the core's words have none. */
export function forCommandLine(err: VmsError): VmsError {
  const data = err.data ?? {};
  const words = byData(data) ?? (err.reason ? BY_REASON[err.reason]?.(data) : undefined);
  if (!words) return err;
  const hint = words.hint === null ? undefined : (words.hint ?? err.hint);
  return new VmsError(err.code, words.message ?? err.message, hint, err.details, err.reason, err.data);
}
