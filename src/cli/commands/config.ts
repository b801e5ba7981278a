import type { Command } from 'commander';
import { configFilePath } from '../../config.js';
import { formatSize } from '../../size.js';
import { action } from '../app.js';
import { table } from '../format.js';

function shown(key: string, value: unknown): string {
  if (key === 'memory' || key === 'disk') return formatSize(value as number);
  if (key === 'bootTimeout') return `${String(value)}s`;
  if (Array.isArray(value)) return value.join(':') || '(none)';
  return String(value) || '(built in)';
}

export function register(program: Command): void {
  program
    .command('config')
    .description('show the effective settings and where each comes from')
    .action(
      action(async ({ ctx, io }) => {
        const c = ctx.config;
        const rows = Object.entries(c).map(([key, s]) => ({
          key,
          value: s.value,
          shown: shown(key, s.value),
          source: s.source,
        }));
        return {
          data: {
            file: configFilePath(io.env),
            settings: Object.fromEntries(rows.map((r) => [r.key, { value: r.value, source: r.source }])),
          },
          human: () =>
            `${table(
              ['KEY', 'VALUE', 'SOURCE'],
              rows.map((r) => [r.key, r.shown, r.source]),
            )}\n\nconfig file: ${configFilePath(io.env)}`,
        };
      }),
    );
}
