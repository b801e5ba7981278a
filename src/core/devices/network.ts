import type { NetworkSpec } from '../../libvirt/domain-xml.js';
import { usageError } from '../../errors.js';

/** "none", "user", or the name of a libvirt network. */
export function parseNetwork(text: string): NetworkSpec {
  if (text === 'none') return { kind: 'none' };
  if (text === 'user') return { kind: 'user' };
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(text)) {
    throw usageError(
      `invalid network '${text}'`,
      'use none, user, or the name of a libvirt network (`virsh net-list --all`)',
    );
  }
  return { kind: 'network', name: text };
}
