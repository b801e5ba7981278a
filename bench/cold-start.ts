import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, CJS, NODE, ROOT, type Harness } from './harness.js';
import { ratioCheck, rotate, Series, type BenchResult } from './lib.js';

// 4. Cold start: `--version` of the bundle and of the single binary against `node -e 0`.

export async function coldStart(h: Harness, b: BenchResult): Promise<void> {
  const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;
  const node0 = new Series('node -e 0', 'node -e 0');
  const cjs = new Series('bundle --version', 'node dist/vms.cjs --version');
  const bin = new Series('binary --version', 'dist/vms --version');
  b.series.push(node0, cjs, bin);
  const cmds: [Series, string, string[]][] = [
    [node0, NODE, ['-e', '0']],
    [cjs, NODE, [CJS, '--version']],
    [bin, BIN, ['--version']],
  ];
  const REPS = 25;
  for (let rep = -3; rep < REPS; rep++) {
    for (const [series, cmd, args] of rotate(cmds, rep + 3)) {
      const r = await h.sh(cmd, args);
      if (series !== node0 && r.stdout.trim() !== version)
        throw new Error(`${cmd} ${args.join(' ')} printed '${r.stdout.trim()}', not ${version}`);
      if (rep >= 0) series.add(r.ms); // the first 3 rounds warm the page cache
    }
  }
  b.checks.push(ratioCheck('node dist/vms.cjs --version / node -e 0', cjs, node0, { max: 1.5 }));
  b.checks.push(ratioCheck('dist/vms --version / node -e 0', bin, node0, { max: 1.5 }));
  b.notes.push(`${REPS} reps after 3 warm-up rounds; the three commands rotate which goes first in each rep.`);
}
