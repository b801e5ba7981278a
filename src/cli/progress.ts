import chalk from 'chalk';
import type { Progress } from '../core/progress.js';

// Progress on stderr: a spinner on a terminal, one plain line per step otherwise, nothing with --json.

const seconds = (t0: number) => `${((performance.now() - t0) / 1000).toFixed(1)}s`;

export function spinnerProgress(): Progress {
  return {
    async step(title, fn) {
      const t0 = performance.now();
      const { default: ora } = await import('ora'); // only on a terminal: its load time is not paid otherwise
      const spinner = ora({ text: title, stream: process.stderr }).start();
      try {
        const result = await fn();
        spinner.succeed(`${title} ${chalk.dim(seconds(t0))}`);
        return result;
      } catch (err) {
        spinner.fail(title);
        throw err;
      }
    },
    note: (message) => process.stderr.write(`${chalk.yellow('!')} ${message}\n`),
  };
}

/** @param verbose also streams guest consoles (-v) */
export function lineProgress(verbose = false): Progress {
  return {
    transcript: verbose ? (text) => process.stderr.write(chalk.dim(text)) : undefined,
    async step(title, fn) {
      process.stderr.write(`==> ${title}\n`);
      const t0 = performance.now();
      try {
        return await fn();
      } catch (err) {
        process.stderr.write(`==> ${title}: failed after ${seconds(t0)}\n`);
        throw err;
      }
    },
    note: (message) => process.stderr.write(`note: ${message}\n`),
  };
}
