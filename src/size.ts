import { usageError } from './errors.js';

// Sizes are binary (K = KiB …), as with qemu-img and virt-install. A unit is required: "4" is ambiguous between
// bytes, MiB and GiB, so it is rejected rather than guessed.
const UNITS: Record<string, number> = { K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };
const SIZE = /^(\d+(?:\.\d+)?)\s*([KMGT])(?:i?B)?$/i;

export interface SizeRange {
  what: string; // "memory", "disk size"
  min: number;
  max: number;
}

export const MEMORY_RANGE: SizeRange = { what: 'memory', min: 64 * 2 ** 20, max: 4 * 2 ** 40 };
export const DISK_RANGE: SizeRange = { what: 'disk size', min: 1 * 2 ** 20, max: 64 * 2 ** 40 };

/** Parses "4G", "512M", "1.5GiB" into bytes; throws a usage error for anything else or out of range. */
export function parseSize(text: string, range: SizeRange): number {
  const m = SIZE.exec(text.trim());
  if (!m) {
    throw usageError(
      `invalid ${range.what} '${text}': expected a number with a K, M, G or T suffix`,
      `for example --${range.what === 'memory' ? 'memory 4G' : 'disk 40G'}`,
    );
  }
  const bytes = Math.round(Number(m[1]) * UNITS[m[2]!.toUpperCase()]!);
  if (bytes < range.min || bytes > range.max) {
    throw usageError(
      `${range.what} '${text}' is out of range`,
      `use a value between ${formatSize(range.min)} and ${formatSize(range.max)}`,
    );
  }
  return bytes;
}

/** Formats bytes with the largest binary unit that keeps at most one decimal: 2147483648 → "2G". */
export function formatSize(bytes: number): string {
  for (const unit of ['T', 'G', 'M', 'K'] as const) {
    const n = Math.round((bytes / UNITS[unit]!) * 10) / 10; // rounded first: 2^40-1 is "1T", not "1024.0G"
    if (n >= 1) return `${Number.isInteger(n) ? n : n.toFixed(1)}${unit}`;
  }
  return `${bytes}B`;
}

export const MiB = 2 ** 20;
export const GiB = 2 ** 30;
