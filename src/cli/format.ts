import chalk from 'chalk';
import { formatSize } from '../size.js';

/** A plain column-aligned table, like `virsh list`. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => stripAnsi(r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c + ' '.repeat(widths[i]! - stripAnsi(c).length)))
      .join('  ')
      .trimEnd();
  return [line(headers.map((h) => chalk.bold(h))), ...rows.map(line)].join('\n');
}

/** "key  value" lines with the keys aligned (a multi-line value stays in its column); empty values are left out. */
export function fields(pairs: [string, string | number | undefined][]): string {
  const shown = pairs.filter(([, v]) => v !== undefined && v !== '');
  const width = Math.max(...shown.map(([k]) => k.length));
  const indent = '\n' + ' '.repeat(width + 2);
  return shown.map(([k, v]) => `${chalk.bold(k.padEnd(width))}  ${String(v).replaceAll('\n', indent)}`).join('\n');
}

export function colorState(state: string): string {
  if (state === 'running') return chalk.green(state);
  if (state === 'shut off') return chalk.dim(state);
  return chalk.yellow(state);
}

export const size = (bytes: number | undefined) => (bytes === undefined ? '-' : formatSize(bytes));

// eslint-disable-next-line no-control-regex
const stripAnsi = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');
