// Another process acting at the worst moment (not a test file itself): right after vms has looked at a path through
// fs.promises (a stat, a readdir) or written it, something changes it, before vms acts on what it saw or did. The named export that src
// imports from node:fs/promises is wrapped for the duration of `fn` (syncBuiltinESMExports updates the bindings).
import fsPromises from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';

type Look = 'stat' | 'readdir' | 'writeFile';

export async function afterLooking<T>(
  look: Look,
  path: string,
  meanwhile: () => Promise<unknown>,
  fn: () => Promise<T>,
): Promise<T> {
  const fs = fsPromises as unknown as Record<Look, (...args: unknown[]) => Promise<unknown>>;
  const real = fs[look];
  fs[look] = async (...args: unknown[]) => {
    const seen = await real(...args);
    if (args[0] === path) await meanwhile();
    return seen;
  };
  syncBuiltinESMExports();
  try {
    return await fn();
  } finally {
    fs[look] = real;
    syncBuiltinESMExports();
  }
}
