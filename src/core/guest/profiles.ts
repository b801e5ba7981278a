import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { bundledFiles } from '../../bundled.js';
import type { Config } from '../../config.js';
import { notFound, usageError } from '../../errors.js';

// Profiles are shell scripts (profiles/NAME.sh, guest/README.md §2). Each may name a parent; a VM gets the whole chain,
// parents first. The user's own directories (VMS_PROFILE_PATH) come before the built-in ones, by name.

export interface Profile {
  name: string;
  parent?: string;
  description?: string;
  text: string;
  from: string; // the directory, or "built-in"
}

const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Pure: the header fields of a profile script. */
export function parseProfileHeader(text: string): { parent?: string; description?: string } {
  const head = text.split('\n').slice(0, 10).join('\n');
  return {
    parent: /^#\s*vms-parent:\s*(\S+)/m.exec(head)?.[1],
    description: /^#\s*vms-description:\s*(.+?)\s*$/m.exec(head)?.[1],
  };
}

interface Catalog {
  profiles: Map<string, Profile>;
  /** `_*.sh` helpers the profiles source, by file name. */
  libs: Map<string, string>;
}

function scripts(dir: string): Record<string, string> {
  if (!existsSync(dir)) return {};
  const names = readdirSync(dir).filter((f) => f.endsWith('.sh'));
  return Object.fromEntries(names.map((f) => [f, readFileSync(join(dir, f), 'utf8')]));
}

export function loadCatalog(config: Config): Catalog {
  const catalog: Catalog = { profiles: new Map(), libs: new Map() };
  const sources: [string, Record<string, string>][] = [
    ...config.profilePath.value.map((dir): [string, Record<string, string>] => [dir, scripts(dir)]),
    ['built-in', bundledFiles('profiles')],
  ];
  for (const [from, files] of sources) {
    for (const [file, text] of Object.entries(files)) {
      if (!file.endsWith('.sh')) continue;
      if (file.startsWith('_')) {
        // Checked now, not when it is copied into the guest after the install: its name is typed there.
        if (!/^_[\w.-]+\.sh$/.test(file))
          throw usageError(
            `profile helper '${from}/${file}' has a name vms cannot copy`,
            'use letters, digits, ".", "_" and "-" only',
          );
        if (!catalog.libs.has(file)) catalog.libs.set(file, text);
        continue;
      }
      const name = file.slice(0, -3);
      if (!PROFILE_NAME.test(name) || catalog.profiles.has(name)) continue;
      catalog.profiles.set(name, { name, ...parseProfileHeader(text), text, from });
    }
  }
  return catalog;
}

/** The profile and its ancestors, root first; a clear error for an unknown name, a missing parent or a cycle. */
export function profileChain(catalog: Catalog, name: string): Profile[] {
  const chain: Profile[] = [];
  for (let next: string | undefined = name; next !== undefined;) {
    const profile = catalog.profiles.get(next);
    if (!profile) {
      const known = [...catalog.profiles.keys()].sort().join(', ');
      throw next === name
        ? notFound(
            `unknown profile '${name}'`,
            `known profiles: ${known} (your own go in a directory named by VMS_PROFILE_PATH)`,
          )
        : usageError(
            `profile '${chain[chain.length - 1]!.name}' names parent '${next}', which does not exist`,
            `known profiles: ${known}`,
          );
    }
    if (chain.some((p) => p.name === next))
      throw usageError(
        `profiles ${chain.map((p) => p.name).join(' → ')} → ${next} form a loop`,
        'fix the vms-parent lines',
      );
    chain.push(profile);
    next = profile.parent;
  }
  return chain.reverse();
}
