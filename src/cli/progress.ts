import chalk from 'chalk';
import type { Progress, TransferStatus } from '../core/progress.js';

// Progress on stderr: a spinner on a terminal, one plain line per step otherwise, nothing with --json. A download
// redraws its spinner's line with a bar; without a terminal it prints a line every few seconds and at the end.

const seconds = (t0: number) => `${((performance.now() - t0) / 1000).toFixed(1)}s`;

/** How often a download prints a plain line when stderr is not a terminal. */
export const TRANSFER_LINE_EVERY_MS = 5000;

/** "[#######.............]" for a fraction from 0 to 1. */
export function bar(fraction: number, width = 20): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

export function spinnerProgress(out: NodeJS.WriteStream = process.stderr): Progress {
  let current: { spinner: { text: string }; title: string; transferred?: string } | undefined;
  return {
    async step(title, fn) {
      const t0 = performance.now();
      const { default: ora } = await import('ora'); // only on a terminal: its load time is not paid otherwise
      // discardStdin off: ora would read the terminal raw, and a Ctrl-C typed there would never become SIGINT.
      const spinner = ora({ text: title, stream: out, discardStdin: false }).start();
      current = { spinner, title };
      try {
        const result = await fn();
        const transferred = current?.transferred ? chalk.dim(`  ${current.transferred}`) : '';
        spinner.succeed(`${title}${transferred} ${chalk.dim(seconds(t0))}`);
        return result;
      } catch (err) {
        spinner.fail(title);
        throw err;
      } finally {
        current = undefined;
      }
    },
    note: (message) => out.write(`${chalk.yellow('!')} ${message}\n`),
    transfer(status: TransferStatus) {
      if (!current) return;
      if (status.final) current.transferred = status.text;
      const shown = status.total ? `${bar(status.done / status.total)} ${status.text}` : status.text;
      current.spinner.text = `${current.title}  ${chalk.dim(shown)}`;
    },
  };
}

/** @param verbose also streams guest consoles (-v) */
export function lineProgress(verbose = false, out: NodeJS.WritableStream = process.stderr): Progress {
  let lastLine = 0;
  return {
    transcript: verbose ? (text) => out.write(chalk.dim(text)) : undefined,
    async step(title, fn) {
      out.write(`==> ${title}\n`);
      const t0 = performance.now();
      lastLine = t0;
      try {
        return await fn();
      } catch (err) {
        out.write(`==> ${title}: failed after ${seconds(t0)}\n`);
        throw err;
      }
    },
    note: (message) => out.write(`note: ${message}\n`),
    transfer(status: TransferStatus) {
      const now = performance.now();
      if (!status.final && now - lastLine < TRANSFER_LINE_EVERY_MS) return;
      lastLine = now;
      out.write(`    ${status.text}\n`);
    },
  };
}
