// npm run build         → dist/vms.cjs: one CommonJS file with every dependency and template inlined
// npm run build:binary  → also dist/vms: a Node single executable application (runs with no node_modules)
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { copyFileSync, chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';

// Replaces src/bundled.ts (which reads templates/, guest/ and profiles/ from disk) with a module holding their text.
const inlineBundled = {
  name: 'inline-bundled',
  setup(b) {
    b.onLoad({ filter: /src[\\/]bundled\.ts$/ }, () => {
      const read = (dir) =>
        Object.fromEntries(
          readdirSync(dir)
            .filter((f) => !/^README/.test(f) && statSync(`${dir}/${f}`).isFile())
            .sort()
            .map((f) => [f, readFileSync(`${dir}/${f}`, 'utf8')]),
        );
      const dirs = { templates: read('templates'), guest: read('guest'), profiles: read('profiles') };
      return {
        loader: 'ts',
        contents: `export type BundledDir = 'templates' | 'guest' | 'profiles';
const dirs: Record<BundledDir, Record<string, string>> = ${JSON.stringify(dirs)};
export function bundledFiles(dir: BundledDir): Record<string, string> { return dirs[dir]; }
export function templateSource(name: string): string { const t = dirs.templates[name]; if (t === undefined) throw new Error('no template ' + name); return t; }`,
      };
    });
  },
};

await build({
  entryPoints: ['src/cli/main.ts'],
  outfile: 'dist/vms.cjs',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: true,
  legalComments: 'none',
  banner: { js: '#!/usr/bin/env node' },
  plugins: [inlineBundled],
  logLevel: 'warning',
});
chmodSync('dist/vms.cjs', 0o755);

if (process.argv.includes('--binary')) {
  writeFileSync(
    'dist/sea-config.json',
    JSON.stringify({
      main: 'dist/vms.cjs',
      output: 'dist/vms.blob',
      disableExperimentalSEAWarning: true,
      useCodeCache: true,
    }),
  );
  execFileSync(process.execPath, ['--experimental-sea-config', 'dist/sea-config.json'], { stdio: 'inherit' });
  copyFileSync(process.execPath, 'dist/vms');
  chmodSync('dist/vms', 0o755);
  execFileSync(
    process.execPath,
    [
      'node_modules/postject/dist/cli.js',
      'dist/vms',
      'NODE_SEA_BLOB',
      'dist/vms.blob',
      '--sentinel-fuse',
      'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2',
    ],
    { stdio: 'inherit' },
  );
}
