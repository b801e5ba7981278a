import { readdirSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// The files vms carries with it: domain templates, the guest install scripts and the built-in profiles. They live as
// plain files in the repo; the esbuild bundle replaces this module with one that holds their text
// (scripts/build.mjs), so the bundle and the single binary need no files beside them.

export type BundledDir = 'templates' | 'guest' | 'profiles';

/** name → text of every file of the directory (READMEs are for people, not carried). */
export function bundledFiles(dir: BundledDir): Record<string, string> {
  const base = fileURLToPath(new URL(`../${dir}/`, import.meta.url));
  const names = readdirSync(base).filter((f) => !/^README/.test(f) && statSync(base + f).isFile());
  return Object.fromEntries(names.sort().map((f) => [f, readFileSync(base + f, 'utf8')]));
}

export function templateSource(name: string): string {
  const text = bundledFiles('templates')[name];
  if (text === undefined) throw new Error(`no template ${name}`);
  return text;
}
