import { usageError } from './errors.js';

// A VM name becomes a libvirt domain name, a file name and a directory name, so it must be safe as all three:
// no slashes, no "..", no spaces, quotes or markup.
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export function validateName(name: string): string {
  if (!NAME.test(name) || name.includes('..')) {
    throw usageError(
      `invalid VM name '${name}'`,
      'use 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit (no "..")',
    );
  }
  return name;
}

/** The guest's hostname for a VM name: "_" is not allowed in hostnames (vms-identity maps it the same way). */
export const hostnameFor = (name: string) => name.replaceAll('_', '-');
