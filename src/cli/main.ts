import * as nodeModule from 'node:module';
import pkg from '../../package.json' with { type: 'json' };

// The entry point. `vms --version` answers before anything else is loaded; everything else loads the program.
// No top-level await: the bundle is CommonJS (a Node single executable needs one).

// Node 22+ can cache the compiled bundle between runs (most of a cold start); Node 20 has no such API.
(nodeModule as { enableCompileCache?: () => unknown }).enableCompileCache?.();

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) process.stdout.write(`${pkg.version}\n`);
else void import('./program.js').then((m) => m.run(process.argv, pkg.version));
