import type { Command } from 'commander';
import { parseMirror } from '../../config.js';
import { fetchIso, formatAge, listIsos, type FetchResult, type IsoList } from '../../core/storage/iso-fetch.js';
import { formatSize } from '../../size.js';
import { action } from '../app.js';
import { fields, table } from '../format.js';

const VERIFIED = { sha256: 'sha256 (from the mirror)', 'sha256+pgp': 'sha256 and PGP signature (Arch release key)' };

function renderFetch(r: FetchResult): string {
  const head = r.alreadyCurrent
    ? `${r.path} is already the current ISO (its sha256 matches the mirror's): nothing downloaded`
    : `downloaded ${r.path}`;
  const details = fields([
    ['size', formatSize(r.bytes)],
    ['sha256', r.sha256],
    ['verified', VERIFIED[r.verified]],
    ['resumed', r.resumedFrom > 0 ? `from ${formatSize(r.resumedFrom)}` : undefined],
    ['mirror', r.mirror],
  ]);
  return `${head}\n${details}`;
}

/** Local time as "2026-11-22 03:52". */
const localTime = (iso: string) => {
  const d = new Date(iso);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}`;
};

function renderList(l: IsoList, now: number): string {
  const partial = l.partial
    ? `\n\na partial download (${formatSize(l.partial.bytes)}) is in ${l.partial.path}: \`vms iso fetch\` resumes it`
    : '';
  if (l.isos.length === 0) return `no ISOs in ${l.dir}: \`vms iso fetch\` downloads the current Arch ISO${partial}`;
  const rows = l.isos.map((i) => [
    i.name,
    formatSize(i.bytes),
    localTime(i.modified),
    formatAge(now - Date.parse(i.modified)),
    i.default ? 'yes' : '-',
  ]);
  return `${table(['NAME', 'SIZE', 'MODIFIED', 'AGE', 'DEFAULT'], rows)}\n\nin ${l.dir}${partial}`;
}

export function register(program: Command): void {
  const iso = program.command('iso').description('the Arch ISO: download and verify the current one, list the ISO dir');
  iso
    .command('fetch')
    .description(
      'download the current Arch ISO into the ISO dir (resumes a broken download; verifies sha256, and PGP when the key is there)',
    )
    .option(
      '--mirror <url>',
      "a mirror's ISO directory (default: $VMS_MIRROR, the config file, else https://geo.mirror.pkgbuild.com/iso/latest/)",
    )
    .action(
      action<{ mirror?: string }>(async ({ ctx, opts }) => {
        const mirror = opts.mirror === undefined ? ctx.config.mirror.value : parseMirror(opts.mirror);
        const result = await fetchIso(ctx, { mirror });
        return { data: result, human: renderFetch };
      }),
    );
  iso
    .command('list')
    .alias('ls')
    .description('the ISOs in the ISO dir: size, date, age, and which one `vms create` uses by default')
    .action(
      action(async ({ ctx }) => {
        const now = Date.now();
        const list = await listIsos(ctx, now);
        return { data: list, human: (l: IsoList) => renderList(l, now) };
      }),
    );
}
