// Runs the test suites with Node's own test runner (TypeScript through tsx).
//   node scripts/test.mjs              static checks, unit, then integration (needs libvirtd + the tiny guest: test/setup.sh)
//   node scripts/test.mjs static|unit|integration
// static: tsc, eslint and prettier --check (npm run format fixes the formatting).
// Integration files run one at a time: they share one libvirtd and two CPU cores.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const suites = process.argv[2] ? [process.argv[2]] : ['static', 'unit', 'integration'];
let failed = false;
if (suites.includes('static')) {
  const bin = (name) => join('node_modules', '.bin', name);
  for (const [what, cmd, args] of [
    ['types', bin('tsc'), ['--noEmit']],
    ['lint', bin('eslint'), ['.']],
    ['format', bin('prettier'), ['--check', '.']],
  ]) {
    console.log(`\n# ${what}: ${[cmd, ...args].join(' ')}`);
    if (spawnSync(cmd, args, { stdio: 'inherit' }).status !== 0) failed = true;
  }
  suites.splice(suites.indexOf('static'), 1);
}
if (suites.includes('integration')) {
  // The integration tests drive the real CLI, bundle and single binary.
  const b = spawnSync(process.execPath, ['scripts/build.mjs', '--binary'], { stdio: 'inherit' });
  if (b.status !== 0) process.exit(1);
}
for (const suite of suites) {
  const dir = `test/${suite}`;
  // Unit tests sit in folders that mirror src/ (test/unit/vm/ for src/core/vm/); integration files are flat.
  const files = readdirSync(dir, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.test.ts'))
    .sort()
    .map((f) => join(dir, f));
  console.log(`\n# ${suite}: ${files.length} files`);
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--test', '--test-reporter=spec', `--test-concurrency=${suite === 'unit' ? 2 : 1}`, ...files],
    { stdio: 'inherit' },
  );
  if (r.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
