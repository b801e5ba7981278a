import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// Templates live in templates/ as plain files. The esbuild bundle replaces this module with one that inlines them
// (scripts/build.mjs), so the bundle and the single binary need no files beside them.
export function templateSource(name: string): string {
  return readFileSync(fileURLToPath(new URL(`../templates/${name}`, import.meta.url)), 'utf8');
}
