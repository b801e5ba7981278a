import { conflict, hasReason } from '../../errors.js';

/**
 * libvirt found no free PCIe slot to hotplug a device into the running VM (`what`: "a NIC", "the disk"): said in
 * plain words with the caller's way out (`hint`). Any other error is returned as it is.
 */
export function explainNoSlot(err: unknown, name: string, what: string, hint: string): unknown {
  if (!hasReason(err, 'pci.noSlots')) return err;
  return conflict(`${name} has no free PCIe slot left to plug ${what} into while it runs`, hint);
}
