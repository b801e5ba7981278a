// Mutation testing over the unit suite (StrykerJS, stryker.config.json; the in-process runner in scripts/stryker/).
//   node scripts/mutate.mjs                       every file stryker.config.json names (src/core, src/libvirt, …)
//   node scripts/mutate.mjs src/core/vm [more…]   one folder or file (or several)
//   node scripts/mutate.mjs --scores FILE.json…   the score per folder of reports already made
// Each scope keeps its own incremental file (reports/incremental/), so a later run of the same scope only tests the
// mutants whose code or tests changed; the report of a run is reports/mutation/SCOPE.json (and .html).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';

const args = process.argv.slice(2);
if (args[0] === '--scores') {
  printScores(args.slice(1));
  process.exit(0);
}
// Stryker's own flags pass through (--concurrency 1, --logLevel=debug); anything else is a folder or file to mutate.
const passThrough = [];
const scope = [];
for (let i = 0; i < args.length; i++) {
  const arg = args[i];
  if (!arg.startsWith('-')) scope.push(arg.replace(/\/+$/, ''));
  else if (arg.includes('=') || !args[i + 1] || args[i + 1].startsWith('-') || /[/.]/.test(args[i + 1]))
    passThrough.push(arg);
  else passThrough.push(arg, args[++i]);
}
const slug = scope.length ? scope.join('+').replaceAll('/', '_') : 'all';
const mutate = scope.flatMap((p) => (p.endsWith('.ts') ? [p] : [`${p}/**/*.ts`]));
const report = `reports/mutation/${slug}.json`;
mkdirSync('reports/incremental', { recursive: true });
// The run's own config: the project's, with this scope's files, incremental file and report names.
const config = JSON.parse(readFileSync('stryker.config.json', 'utf8'));
if (mutate.length) config.mutate = mutate;
config.incrementalFile = `reports/incremental/${slug}.json`;
config.jsonReporter = { fileName: report };
config.htmlReporter = { fileName: report.replace(/\.json$/, '.html') };
const configFile = `reports/stryker.${slug}.json`;
writeFileSync(configFile, JSON.stringify(config, null, 2));
// A private temp dir for the whole run: a mutant of code that deletes files may delete a whole temp dir (one in
// repair.ts's clean-up of vms' temp files, its name test made always true, emptied the host's /tmp).
const privateTmp = mkdtempSync(join(tmpdir(), 'vms-mutate-'));
const r = spawnSync(join('node_modules', '.bin', 'stryker'), ['run', configFile, ...passThrough], {
  stdio: 'inherit',
  env: { ...process.env, TMPDIR: privateTmp },
});
rmSync(privateTmp, { recursive: true, force: true });
if (existsSync(report)) printScores([report]);
process.exit(r.status ?? 1);

/** Killed (or timed out) out of all mutants that were tested or had no test, per folder: Stryker's mutation score. */
function printScores(reports) {
  const folders = new Map();
  for (const file of reports) {
    const { files } = JSON.parse(readFileSync(file, 'utf8'));
    for (const [path, { mutants }] of Object.entries(files)) {
      const folder = dirname(path);
      const row = folders.get(folder) ?? { killed: 0, survived: 0, noCoverage: 0, other: 0 };
      for (const m of mutants) {
        if (m.status === 'Killed' || m.status === 'Timeout') row.killed++;
        else if (m.status === 'Survived') row.survived++;
        else if (m.status === 'NoCoverage') row.noCoverage++;
        else row.other++;
      }
      folders.set(folder, row);
    }
  }
  const total = { killed: 0, survived: 0, noCoverage: 0, other: 0 };
  console.log('\n| folder | score | killed | survived | no test | other |\n|---|---:|---:|---:|---:|---:|');
  const line = (name, r) => {
    const scored = r.killed + r.survived + r.noCoverage;
    const score = scored ? ((100 * r.killed) / scored).toFixed(1) : '-';
    console.log(`| ${name} | ${score} % | ${r.killed} | ${r.survived} | ${r.noCoverage} | ${r.other} |`);
  };
  for (const [folder, row] of [...folders].sort()) {
    line(folder, row);
    for (const k of Object.keys(total)) total[k] += row[k];
  }
  line('**all**', total);
}
