import { existsSync } from 'node:fs';
import { VmsError, hasReason, notFound, usageError } from '../../errors.js';
import { changeDevice, liveDomain, type Placed } from '../../libvirt/device-xml.js';
import { parseDomainXml } from '../../libvirt/domain-parse.js';
import {
  NIC_MODELS,
  detachNicXml,
  nicXml,
  readNics,
  type NicFacts,
  type NicModel,
  type NicSource,
  type NicSpec,
} from '../../libvirt/nic-xml.js';
import { GuestAgent } from '../../libvirt/guest-agent.js';
import { virshCommand, type DomainState } from '../../libvirt/virsh.js';
import type { Context } from '../context.js';
import { explainNoSlot } from './hotplug.js';
import { parseNetwork } from './network.js';
import { isActive } from '../vm/vm.js';
import { loadVmDevices } from './vm-devices.js';
import { shellQuote as q } from '../../quote.js';
import { withOperation } from '../ops/operation.js';
import { pollUntil } from '../ops/poll.js';

// `vms nic`: network cards plugged into a running VM and its saved definition at once (PCIe hotplug), or into the
// definition only while it is shut off.

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** "auto" (undefined: libvirt picks one) or a unicast MAC, lower-cased. */
export function parseMac(text: string): string | undefined {
  if (text === 'auto') return undefined;
  const mac = text.toLowerCase();
  const bad = (message: string) =>
    new VmsError(
      'usage',
      message,
      "give six hex pairs such as 52:54:00:12:34:56 (52:54:00 is QEMU's prefix), or auto",
      undefined,
      'nic.badMac',
    );
  if (!MAC.test(mac)) throw bad(`invalid MAC address '${text}'`);
  if (parseInt(mac.slice(0, 2), 16) & 1)
    throw bad(`${text} is a multicast MAC address: a NIC needs a unicast one (even first byte)`);
  if (mac === '00:00:00:00:00:00') throw bad(`${text} is not a usable MAC address`);
  if (mac.startsWith('fe:')) throw bad(`${text} starts with fe, which libvirt keeps for the host's side of a NIC`);
  return mac;
}

export function parseNicModel(text: string): NicModel {
  const model = NIC_MODELS.find((m) => m === text);
  if (!model) throw usageError(`invalid NIC model '${text}'`, `use ${NIC_MODELS.join(' or ')}`);
  return model;
}

/** Linux interface names: up to 15 characters, no slash, colon or blank. */
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

/** At most one of network, bridge, user; none means libvirt's 'default' network. */
export function parseNicSource(opts: { network?: string; bridge?: string; user?: boolean }): NicSource {
  const given = [opts.network !== undefined, opts.bridge !== undefined, Boolean(opts.user)].filter(Boolean).length;
  if (given > 1) {
    const hint = 'a NIC is on a libvirt network, on a host bridge, or in user mode';
    throw new VmsError('usage', 'give only one of network, bridge and user', hint, undefined, 'nic.twoSources');
  }
  if (opts.user) return { kind: 'user' };
  if (opts.bridge !== undefined) {
    if (!IFNAME.test(opts.bridge))
      throw usageError(
        `invalid bridge name '${opts.bridge}'`,
        'a host bridge is named like br0 or virbr1 (`ip link show type bridge`)',
      );
    return { kind: 'bridge', name: opts.bridge };
  }
  const network = parseNetwork(opts.network ?? 'default');
  if (network.kind !== 'network') {
    const hint = 'name a libvirt network (`virsh net-list --all`), or use user mode';
    throw new VmsError('usage', `invalid network '${opts.network}'`, hint, undefined, 'nic.badNetwork');
  }
  return network;
}

export interface NicInfo {
  /** Its place in `vms nic list`: the saved NICs in order, then any the running VM has only live. */
  index: number;
  type: string;
  source?: string;
  model?: string;
  mac: string;
  /** The guest's name for it (eth0, enp1s0, …) when a guest agent answers. */
  guestName?: string;
  inConfig: boolean;
  live?: boolean;
}

export interface NicList {
  name: string;
  state: DomainState;
  nics: NicInfo[];
}

/** The guest's interface names by MAC, from the guest agent; empty when none answers (it is optional). */
export async function guestInterfaceNames(ctx: Context, name: string): Promise<Map<string, string>> {
  try {
    const interfaces = await new GuestAgent(ctx.virsh, name).networkInterfaces();
    return new Map(interfaces.filter((i) => i.name && i.mac).map((i) => [i.mac!, i.name]));
  } catch (err) {
    if (err instanceof VmsError && err.code !== 'interrupted') return new Map(); // no agent, or one vms cannot read
    throw err;
  }
}

/** The NICs with their facts (for detaching) and as `vms nic list` shows them. */
async function readVmNics(
  ctx: Context,
  name: string,
  guestNames: boolean,
): Promise<{ list: NicList; placed: Placed<NicFacts>[] }> {
  const { vm, active: running, placed } = await loadVmDevices(ctx, name, readNics, (n) => n.mac);
  const names = running && guestNames ? await guestInterfaceNames(ctx, name) : new Map<string, string>();
  const nics = placed.map(({ device: n, inConfig, live }, index) => ({
    index,
    type: n.type,
    source: n.source,
    model: n.model,
    mac: n.mac,
    guestName: names.get(n.mac),
    inConfig,
    live,
  }));
  return { list: { name, state: vm.state, nics }, placed };
}

export async function listNics(ctx: Context, name: string): Promise<NicList> {
  return (await readVmNics(ctx, name, true)).list;
}

/** A libvirt network must exist and be running before a NIC can use it; say how to get there. */
async function checkNetwork(ctx: Context, network: string): Promise<void> {
  const how =
    network === 'default' ? '`vms bootstrap` defines and starts it' : `\`virsh net-list --all\` shows the networks`;
  const info = await ctx.virsh.netInfo(network).catch((err: unknown) => {
    if (!hasReason(err, 'network.notFound')) throw err;
    const message = `libvirt has no network named '${network}'`;
    throw new VmsError('notFound', message, `${how}; or use user mode`, undefined, 'nic.networkMissing', { how });
  });
  if (!info.active) {
    const start = network === 'default' ? '`vms bootstrap` starts it' : `\`virsh net-start ${q(network)}\` starts it`;
    const message = `libvirt's network '${network}' is not active`;
    throw new VmsError('conflict', message, `${start}; or use user mode`, undefined, 'nic.networkMissing', {
      how: start,
    });
  }
}

/**
 * The bridge must exist on this host: libvirt would only find out when the VM starts. `sysNet` is where the kernel
 * lists the host's interfaces (a test gives a directory of its own: a host may have no bridge).
 */
export function checkBridge(bridge: string, sysNet = '/sys/class/net'): void {
  const hint = '`ip link show type bridge` lists the bridges; or use user mode';
  if (!existsSync(`${sysNet}/${bridge}`)) {
    throw new VmsError(
      'notFound',
      `this host has no network interface named '${bridge}'`,
      hint,
      undefined,
      'nic.noBridge',
    );
  }
  if (!existsSync(`${sysNet}/${bridge}/bridge`)) {
    throw new VmsError('usage', `'${bridge}' is not a bridge`, hint, undefined, 'nic.noBridge');
  }
}

/** The VM (if any) that already has a NIC with this MAC, live or in its saved definition. */
async function macOwner(ctx: Context, mac: string): Promise<string | undefined> {
  const names = await ctx.virsh.names();
  const both = (n: string) => [virshCommand.dumpxml(n), virshCommand.dumpxml(n, { inactive: true })];
  const xmls = await ctx.virsh.batch(names.flatMap(both));
  for (const [i, xml] of xmls.entries()) {
    if (xml && readNics(await parseDomainXml(xml)).some((n) => n.mac === mac)) return names[Math.floor(i / 2)];
  }
  return undefined;
}

export interface NicChange {
  name: string;
  nic: NicInfo;
  /** The running VM got the change too (else only the saved definition: the VM is shut off). */
  live: boolean;
}

export async function addNic(ctx: Context, name: string, spec: NicSpec): Promise<NicChange> {
  return withOperation(ctx, { command: 'nic add', vms: [name] }, async (ctx) => {
    const before = await ctx.progress.step('Checking input', async () => {
      const { list: before } = await readVmNics(ctx, name, false);
      if (spec.source.kind === 'network') await checkNetwork(ctx, spec.source.name);
      if (spec.source.kind === 'bridge') checkBridge(spec.source.name);
      const owner = spec.mac && (await macOwner(ctx, spec.mac));
      if (owner) {
        const message = `MAC address ${spec.mac} is already used by a NIC of '${owner}'`;
        throw new VmsError(
          'conflict',
          message,
          'give another MAC, or leave it out and libvirt picks one',
          undefined,
          'nic.macTaken',
        );
      }
      return before;
    });
    const live = isActive(before.state);
    await ctx.progress.step(
      `Adding a NIC (${spec.model}, ${spec.source.kind}) to ${name}${live ? ' (live)' : ''}`,
      async () => {
        try {
          await changeDevice(ctx.virsh, 'attach-device', name, await nicXml(spec), { live, config: true });
        } catch (err) {
          const stopFirst = `stop it (\`vms stop ${q(name)}\`) and add the NIC then: it gets a slot at the next start`;
          throw explainNoSlot(err, name, 'a NIC', stopFirst);
        }
      },
    );
    const known = new Set(before.nics.map((n) => n.mac));
    const { nics } = await listNics(ctx, name);
    const nic = nics.find((n) => (spec.mac ? n.mac === spec.mac : n.inConfig && !known.has(n.mac)));
    if (!nic)
      throw new VmsError(
        'failed',
        `libvirt reported the NIC added, but ${name}'s definition does not show it`,
        `\`vms nic list ${q(name)}\` shows what is there`,
      );
    return { name, nic, live };
  });
}

/** A NIC by its index in `vms nic list` or by its MAC. */
function findNic(list: NicList, which: string): NicInfo {
  const mac = which.toLowerCase();
  const nic = /^\d+$/.test(which)
    ? list.nics[Number(which)]
    : MAC.test(mac)
      ? list.nics.find((n) => n.mac === mac)
      : undefined;
  if (nic) return nic;
  if (!/^\d+$/.test(which) && !MAC.test(mac))
    throw usageError(
      `'${which}' is neither a NIC index nor a MAC address`,
      `\`vms nic list ${q(list.name)}\` shows both`,
    );
  throw notFound(`${list.name} has no NIC ${which}`, `\`vms nic list ${q(list.name)}\` shows its NICs`);
}

/** Unplugs a NIC from the running VM (waiting until the guest has let go of it) and from the saved definition. */
export async function deleteNic(ctx: Context, name: string, which: string): Promise<NicChange> {
  return withOperation(ctx, { command: 'nic del', vms: [name] }, async (ctx) => {
    const { list, placed } = await readVmNics(ctx, name, false);
    const nic = findNic(list, which);
    const where = { live: Boolean(nic.live), config: nic.inConfig };
    await ctx.progress.step(
      `Removing NIC ${nic.index} (${nic.mac}) from ${name}${where.live ? ' (live)' : ''}`,
      async () => {
        await changeDevice(ctx.virsh, 'detach-device', name, await detachNicXml(placed[nic.index]!.device), where);
        if (where.live) await waitUntilUnplugged(ctx, name, nic);
      },
    );
    return { name, nic, live: where.live };
  });
}

/** How long a guest may take to let go of an unplugged NIC (PCIe hotplug: the guest's driver must answer). */
const UNPLUG_TIMEOUT_MS = 60_000;

/** libvirt sends the unplug request and waits only a few seconds for the guest to answer; a TCG guest can take longer. */
async function waitUntilUnplugged(ctx: Context, name: string, nic: NicInfo): Promise<void> {
  const gone = async () => !readNics((await liveDomain(ctx.virsh, name, true))!).some((n) => n.mac === nic.mac);
  const timeoutError = () => {
    const saved = nic.inConfig ? 'it is out of the saved definition; ' : '';
    const message = `${name}'s guest has not let go of the NIC ${nic.mac} within ${UNPLUG_TIMEOUT_MS / 1000}s`;
    return new VmsError(
      'timeout',
      message,
      `${saved}it leaves the running VM when the guest answers, or when the VM stops`,
    );
  };
  await pollUntil(gone, { timeoutMs: UNPLUG_TIMEOUT_MS, signal: ctx.signal, timeoutError });
}
