import { createHash, type Hash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VmsError, interrupted, isInterrupt, type ErrorCode } from '../../errors.js';
import { errorSummary } from '../../runner.js';
import { formatSize } from '../../size.js';
import { findProgram } from '../host/programs.js';
import type { Context } from '../context.js';
import { ARCH_ISO } from './iso.js';
import type { TransferStatus } from '../progress.js';
import { takeLock } from '../host/file-lock.js';

// `vms iso fetch`: the current Arch ISO from a mirror into the ISO dir. It goes to ISO.part first (a broken download
// resumes from there by an HTTP Range request), is checked against the mirror's sha256sums.txt (and its PGP signature
// when gpg and the Arch signing key are there) and only then renamed into place.
//
// Errors: the mirror cannot be connected to → 'unreachable' (exit 5, as for libvirtd: try again or another mirror);
// an HTTP error, a broken-off download, a wrong checksum or signature, an unwritable ISO dir → 'failed' (exit 1);
// the mirror sending nothing for a minute → 'timeout' (exit 6); Ctrl-C → 'interrupted' (130, the .part is kept);
// a bad --mirror → 'usage' (2). `vms iso list`: what the ISO dir holds.

export const SUMS_FILE = 'sha256sums.txt';
/** The Arch ISO release signing key (Pierre Schmitz), as on archlinux.org/download. */
export const ARCH_RELEASE_KEY = '3E80CA1A8B89F69CBA57D98A76A5EF9054449A5C';
export const ARCH_KEY_UID = 'pierre@archlinux.org';
const IDLE_TIMEOUT_MS = 60_000;
const SMALL_FILE_TIMEOUT_MS = 30_000;
const REPORT_EVERY_MS = 200;
const MIRRORS_HINT = 'pick another mirror (its iso/latest/ directory; list: https://archlinux.org/download/)';

/** A mirror that failed us: the hint ends in picking another, which the CLI words with its --mirror flag. */
const mirrorError = (code: ErrorCode, message: string, before: string) =>
  new VmsError(code, message, `${before}${MIRRORS_HINT}`, undefined, undefined, { otherMirror: before });

// ---- pure parts -------------------------------------------------------------------------------------------------

const SUM_LINE = /^([0-9a-f]{64})\s+\*?(?:\.\/)?(\S.*)$/i;

/** sha256sums.txt (`<sha256>  <name>` lines, as sha256sum writes them) → name → checksum; other lines are skipped. */
export function parseSums(text: string): Map<string, string> {
  const sums = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = SUM_LINE.exec(line.trim());
    if (m) sums.set(m[2]!, m[1]!.toLowerCase());
  }
  return sums;
}

/** What is left of an earlier download: the .part's size and the checksum it was started for (its .sha256 record). */
export interface PartState {
  bytes: number;
  sha256?: string;
}

/** Whether to resume: only a non-empty .part that was started for the same ISO (same checksum) is continued. */
export function resumeFrom(part: PartState | undefined, expected: string): { from: number; note?: string } {
  if (!part || part.bytes === 0) return { from: 0 };
  if (part.sha256 !== expected)
    return {
      from: 0,
      note: `the partial download (${formatSize(part.bytes)}) is of another ISO release: starting over`,
    };
  return { from: part.bytes, note: `resuming the partial download at ${formatSize(part.bytes)}` };
}

export type ResponsePlan =
  | { action: 'write'; from: number; total?: number; note?: string } // write the body at `from` (0: truncate)
  | { action: 'complete'; total: number } // the .part already holds the whole file
  | { action: 'restart'; note: string } // drop the .part and ask again without a Range
  | { action: 'fail'; message: string };

const num = (text: string | null | undefined) => (text && /^\d+$/.test(text) ? Number(text) : undefined);

/** What to do with the answer to a GET sent with `Range: bytes=from-` (from > 0) or without one (from = 0). */
export function planResponse(
  from: number,
  status: number,
  contentRange?: string | null,
  contentLength?: string | null,
): ResponsePlan {
  if (status === 200) {
    const total = num(contentLength);
    return from > 0
      ? { action: 'write', from: 0, total, note: 'the mirror does not resume downloads: starting over' }
      : { action: 'write', from: 0, total };
  }
  if (status === 206) {
    const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(contentRange?.trim() ?? '');
    if (!m || Number(m[1]) !== from)
      return {
        action: 'fail',
        message: `the mirror answered a resume from byte ${from} with the range '${contentRange ?? ''}'`,
      };
    return { action: 'write', from, total: num(m[3]) };
  }
  if (status === 416 && from > 0) {
    const total = num(/^bytes \*\/(\d+)$/.exec(contentRange?.trim() ?? '')?.[1]);
    if (total === from) return { action: 'complete', total };
    return {
      action: 'restart',
      note: `the partial download (${formatSize(from)}) is longer than the ISO on the mirror: starting over`,
    };
  }
  return { action: 'fail', message: `HTTP ${status}` };
}

/** "45s", "3m05s", "1h02m"; "?" for no number. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** "512M / 1.2G (42%)  10.5M/s  ETA 1m10s"; without a total just the bytes; the last report has no ETA. */
export function formatTransfer(s: Omit<TransferStatus, 'text'>): string {
  const parts = [
    s.total
      ? `${formatSize(s.done)} / ${formatSize(s.total)} (${Math.floor((s.done / s.total) * 100)}%)`
      : formatSize(s.done),
  ];
  if (s.rate !== undefined) parts.push(`${formatSize(s.rate)}/s`);
  if (!s.final && s.eta !== undefined) parts.push(`ETA ${formatDuration(s.eta)}`);
  return parts.join('  ');
}

/** "just now", "5 minutes", "3 hours", "12 days". */
export function formatAge(ms: number): string {
  const plural = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;
  const minutes = Math.floor(ms / 60_000);
  if (minutes < 1) return 'just now';
  if (minutes < 60) return plural(minutes, 'minute');
  if (minutes < 24 * 60) return plural(Math.floor(minutes / 60), 'hour');
  return plural(Math.floor(minutes / (24 * 60)), 'day');
}

/**
 * Rate and ETA of a transfer from timed byte counts: the rate over the last `windowMs` (so it follows the line's
 * speed), the last report's rate over the whole transfer. Bytes a resumed download already had do not count.
 */
export class TransferMeter {
  private readonly start: { t: number; bytes: number };
  private samples: { t: number; bytes: number }[];

  constructor(
    from: number,
    readonly total: number | undefined,
    now: number,
    private readonly windowMs = 5000,
  ) {
    this.start = { t: now, bytes: from };
    this.samples = [this.start];
  }

  /** `done` bytes are there at `now` (ms): the status to report. */
  update(done: number, now: number, final = false): TransferStatus {
    this.samples.push({ t: now, bytes: done });
    // keep the newest sample at least windowMs old as the window's start
    while (this.samples.length > 2 && now - this.samples[1]!.t >= this.windowMs) this.samples.shift();
    const since = final ? this.start : this.samples[0]!;
    const ms = now - since.t;
    const rate = ms >= (final ? 1 : 500) ? ((done - since.bytes) * 1000) / ms : undefined;
    const eta = rate && this.total !== undefined ? Math.max(0, this.total - done) / rate : undefined;
    const status = { done, total: this.total, rate, eta, final };
    return { ...status, text: formatTransfer(status) };
  }
}

/** gpg --with-colons listing → the primary keys' fingerprints (a `fpr` line right after a `pub` line). */
export function primaryFingerprints(colons: string): string[] {
  const lines = colons.split('\n');
  return lines.flatMap((line, i) =>
    line.startsWith('fpr:') && lines[i - 1]?.startsWith('pub:') ? [line.split(':')[9]!.toUpperCase()] : [],
  );
}

export type SignatureCheck =
  | { result: 'good'; fingerprint: string }
  | { result: 'bad'; why: string } // does not verify, or by a key that is not the Arch key
  | { result: 'noKey'; keyId: string } // made by a key the keyring does not have
  | { result: 'error'; why: string };

/** gpg --status-fd output of a --verify → the verdict; a good signature must be by one of `accepted` (primary keys). */
export function classifySignature(status: string, accepted: string[]): SignatureCheck {
  const field = (name: string) =>
    status
      .split('\n')
      .find((l) => l.startsWith(`[GNUPG:] ${name} `))
      ?.split(' ')
      .slice(2);
  const bad = field('BADSIG') ?? field('REVKEYSIG');
  if (bad)
    return {
      result: 'bad',
      why: `${status.includes('REVKEYSIG') ? 'made by a revoked key' : 'it does not match the file'} (key ${bad[0]})`,
    };
  const valid = field('VALIDSIG');
  if (valid) {
    const primary = (valid[9] ?? valid[0]!).toUpperCase();
    if (accepted.includes(primary)) return { result: 'good', fingerprint: primary };
    return { result: 'bad', why: `it is good but made by ${primary}, which is not the Arch release key` };
  }
  const missing = field('NO_PUBKEY');
  if (missing) return { result: 'noKey', keyId: missing[0]! };
  return { result: 'error', why: 'gpg could not check it' };
}

// ---- the download -----------------------------------------------------------------------------------------------

export interface FetchOptions {
  /** The mirror's ISO directory, ending in "/" (config.ts parseMirror). */
  mirror: string;
  idleTimeoutMs?: number;
}

export type Verified = 'sha256' | 'sha256+pgp';

export interface FetchResult {
  path: string;
  sha256: string;
  bytes: number;
  /** Where the download went on from (bytes an earlier, broken one had fetched); 0 when it started afresh. */
  resumedFrom: number;
  verified: Verified;
  /** The ISO dir already held the current ISO: nothing was downloaded. */
  alreadyCurrent: boolean;
  mirror: string;
}

/** Paths of the download: the ISO, its .part, and the record of which checksum the .part is for. */
function isoPaths(dir: string) {
  const path = join(dir, ARCH_ISO);
  return { path, part: `${path}.part`, record: `${path}.part.sha256`, lock: `${path}.part.lock` };
}
type Paths = ReturnType<typeof isoPaths>;

/** fetch's own errors say only "fetch failed": the reason (e.g. "connect ECONNREFUSED 127.0.0.1:8080") is the cause. */
const causeOf = (err: unknown) => {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return cause?.message ?? cause?.code ?? (err as Error).message;
};

/** A GET that turns "cannot connect" into 'unreachable'; an abort (Ctrl-C, a timeout) is rethrown as it is. */
async function get(url: string, signal: AbortSignal, headers: Record<string, string> = {}): Promise<Response> {
  try {
    // identity: the bytes on disk must be the bytes counted for a Range (fetch would otherwise inflate gzip)
    return await fetch(url, { signal, headers: { 'accept-encoding': 'identity', ...headers } });
  } catch (err) {
    if (signal.aborted) throw err;
    throw mirrorError(
      'unreachable',
      `cannot reach the mirror at ${new URL(url).origin}: ${causeOf(err)}`,
      `check the network, or `,
    );
  }
}

const httpError = (url: string, res: Response, what: string) =>
  mirrorError(
    'failed',
    `the mirror has no ${what}: ${url} answered HTTP ${res.status} ${res.statusText}`.trim(),
    `is it an Arch ISO directory (one that holds ${SUMS_FILE})? Or `,
  );

/** Ctrl-C or a timeout of its own, whichever comes first. */
function deadline(ctx: Context, ms: number): AbortSignal {
  return ctx.signal ? AbortSignal.any([ctx.signal, AbortSignal.timeout(ms)]) : AbortSignal.timeout(ms);
}

function timeoutError(url: string, ms: number, before = 'try again, or '): VmsError {
  return mirrorError('timeout', `the mirror sent nothing for ${Math.round(ms / 1000)}s (${url})`, before);
}

/** A small file from the mirror (the checksums, the signature); undefined for a 404 when `optional`. */
async function smallFile(ctx: Context, url: string, what: string, optional = false): Promise<Buffer | undefined> {
  const signal = deadline(ctx, SMALL_FILE_TIMEOUT_MS);
  try {
    const res = await get(url, signal);
    if (optional && res.status === 404) return undefined;
    if (!res.ok) throw httpError(url, res, what);
    return Buffer.from(await res.arrayBuffer());
  } catch (err) {
    if (signal.aborted && !ctx.signal?.aborted) throw timeoutError(url, SMALL_FILE_TIMEOUT_MS);
    throw err;
  }
}

async function sha256File(path: string, signal?: AbortSignal, hash = createHash('sha256')): Promise<Hash> {
  for await (const chunk of createReadStream(path, { signal })) hash.update(chunk as Buffer);
  return hash;
}

async function partState({ part, record }: Paths): Promise<PartState | undefined> {
  const bytes = await stat(part).then(
    (s) => s.size,
    () => undefined,
  );
  if (bytes === undefined) return undefined;
  const sha256 = await readFile(record, 'utf8').then(
    (t) => parseSums(t).get(ARCH_ISO),
    () => undefined,
  );
  return { bytes, sha256 };
}

const removePart = (p: Paths) => Promise.all([rm(p.part, { force: true }), rm(p.record, { force: true })]);

function writeError(path: string, err: unknown): VmsError {
  const code = (err as NodeJS.ErrnoException).code;
  const hint =
    code === 'EACCES' || code === 'EPERM' || code === 'EROFS'
      ? 'run it as root (sudo), or set VMS_ISO_DIR (or "isoDir" in the config file) to a directory of yours'
      : code === 'ENOSPC'
        ? 'free some space there, then run `vms iso fetch` again: it resumes'
        : undefined;
  return new VmsError('failed', `cannot write ${path}: ${(err as Error).message}`, hint);
}

/** For .catch(): a file-system error while writing `path` as the error to show. */
const writing =
  (path: string) =>
  (err: unknown): never => {
    throw writeError(path, err);
  };

interface Downloaded {
  sha256: string;
  resumedFrom: number;
}

/** GETs the ISO into the .part (from `from` on, `hash` holding the .part's bytes so far) and returns its checksum. */
async function download(
  ctx: Context,
  url: string,
  p: Paths,
  from: number,
  hash: Hash,
  idleMs: number,
): Promise<Downloaded> {
  const idle = new AbortController();
  const signal = ctx.signal ? AbortSignal.any([ctx.signal, idle.signal]) : idle.signal;
  const timer = setTimeout(() => idle.abort(), idleMs);
  let done = from;
  let total: number | undefined;
  try {
    const res = await get(url, signal, from > 0 ? { range: `bytes=${from}-` } : {});
    const plan = planResponse(from, res.status, res.headers.get('content-range'), res.headers.get('content-length'));
    if (plan.action !== 'write') await res.body?.cancel();
    if (plan.action === 'fail')
      throw res.status === 404
        ? httpError(url, res, ARCH_ISO)
        : mirrorError('failed', `cannot download ${url}: ${plan.message}`, `try again later, or `);
    if (plan.action === 'complete') return { sha256: hash.digest('hex'), resumedFrom: from };
    if (plan.action === 'restart') {
      ctx.progress.note(plan.note);
      clearTimeout(timer);
      return await download(ctx, url, p, 0, createHash('sha256'), idleMs);
    }
    if (plan.note) ctx.progress.note(plan.note);
    if (plan.from === 0) hash = createHash('sha256');
    done = plan.from;
    total = plan.total;
    const file = await open(p.part, plan.from > 0 ? 'a' : 'w').catch(writing(p.part));
    const meter = new TransferMeter(done, total, performance.now());
    let reported = 0;
    try {
      for await (const chunk of res.body ?? []) {
        timer.refresh();
        hash.update(chunk);
        await file.write(chunk).catch(writing(p.part));
        done += chunk.length;
        const now = performance.now();
        if (now - reported >= REPORT_EVERY_MS) {
          reported = now;
          ctx.progress.transfer?.(meter.update(done, now));
        }
      }
      await file.sync();
    } finally {
      await file.close();
    }
    if (total !== undefined && done !== total) throw new Error(`the mirror sent ${done} bytes of ${total}`);
    ctx.progress.transfer?.(meter.update(done, performance.now(), true));
    return { sha256: hash.digest('hex'), resumedFrom: plan.from };
  } catch (err) {
    if (err instanceof VmsError || ctx.signal?.aborted) throw err;
    const kept =
      done > 0
        ? `run \`vms iso fetch\` again to resume from ${formatSize(done)} (the partial download is kept in ${p.part})`
        : undefined;
    if (idle.signal.aborted) throw timeoutError(url, idleMs, kept && `${kept}, or `);
    const got = total ? `${formatSize(done)} of ${formatSize(total)}` : formatSize(done);
    throw mirrorError(
      'failed',
      `the download of ${ARCH_ISO} broke off after ${got}: ${causeOf(err)}`,
      kept ? `${kept}, or ` : 'try again, or ',
    );
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Checks `file` against the mirror's PGP signature when gpg and the Arch signing key are there; otherwise says (a
 * note) that the sha256 was all. A bad signature comes back as the error to throw (the caller decides what to delete).
 */
async function checkSignature(ctx: Context, mirror: string, file: string): Promise<Verified | VmsError> {
  const only = 'the ISO was checked by sha256 only';
  if (!findProgram(['gpg'], ctx.host.env.PATH)) {
    ctx.progress.note(`gpg is not installed: ${only}`);
    return 'sha256';
  }
  const listed = await ctx.runner.run(
    'gpg',
    ['--batch', '--with-colons', '--list-keys', ARCH_KEY_UID, ARCH_RELEASE_KEY],
    { signal: ctx.signal, timeoutMs: 30_000 },
  );
  const keys = primaryFingerprints(listed.stdout);
  if (keys.length === 0) {
    ctx.progress.note(
      `the Arch signing key (${ARCH_KEY_UID}) is not in your gpg keyring: ${only} (to add it: gpg --auto-key-locate clear,wkd --locate-external-keys ${ARCH_KEY_UID})`,
    );
    return 'sha256';
  }
  const url = new URL(`${ARCH_ISO}.sig`, mirror).href;
  return ctx.progress.step('Checking the PGP signature', async () => {
    const sig = await smallFile(ctx, url, `${ARCH_ISO}.sig`, true);
    if (!sig) {
      ctx.progress.note(`the mirror has no ${ARCH_ISO}.sig: ${only}`);
      return 'sha256';
    }
    const dir = await mkdtemp(join(tmpdir(), 'vms-sig-'));
    try {
      await writeFile(join(dir, 'iso.sig'), sig);
      const r = await ctx.runner.run('gpg', ['--batch', '--status-fd', '1', '--verify', join(dir, 'iso.sig'), file], {
        signal: ctx.signal,
        timeoutMs: 600_000,
      });
      const check = classifySignature(r.stdout, keys);
      if (check.result === 'good') return 'sha256+pgp';
      if (check.result === 'noKey') {
        ctx.progress.note(`the signature is by key ${check.keyId}, which is not in your gpg keyring: ${only}`);
        return 'sha256';
      }
      const why = check.result === 'bad' ? check.why : `${check.why}: ${errorSummary(r)}`;
      return mirrorError(
        'failed',
        `the PGP signature of ${ARCH_ISO} from ${mirror} is bad: ${why}`,
        `the mirror may serve a tampered file: `,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}

/** Downloads and verifies the current Arch ISO into the ISO dir (or finds it is already there). */
export async function fetchIso(ctx: Context, opts: FetchOptions): Promise<FetchResult> {
  const { mirror } = opts;
  const dir = ctx.config.isoDir.value;
  const p = isoPaths(dir);
  const sumsUrl = new URL(SUMS_FILE, mirror).href;
  const sums = await ctx.progress.step(`Reading ${SUMS_FILE} from ${mirror}`, () => smallFile(ctx, sumsUrl, SUMS_FILE));
  const expected = parseSums(sums!.toString('utf8')).get(ARCH_ISO);
  if (!expected)
    throw mirrorError(
      'failed',
      `${sumsUrl} has no line for ${ARCH_ISO}`,
      `is the mirror's iso/latest/ directory complete? Or `,
    );
  await mkdir(dir, { recursive: true }).catch(writing(dir));
  // Two fetches at once would write into one .part, and one could remove it under the other.
  const release = await takeLock(p.lock, '`vms iso fetch`');
  try {
    return await fetchLocked(ctx, opts, p, expected);
  } finally {
    await release();
  }
}

/** The fetch itself, under the lock: `expected` is the mirror's sha256 of the ISO. */
async function fetchLocked(
  ctx: Context,
  { mirror, idleTimeoutMs }: FetchOptions,
  p: Paths,
  expected: string,
): Promise<FetchResult> {
  const result = (
    sha256: string,
    bytes: number,
    resumedFrom: number,
    verified: Verified,
    alreadyCurrent: boolean,
  ): FetchResult => ({ path: p.path, sha256, bytes, resumedFrom, verified, alreadyCurrent, mirror });

  if (existsSync(p.path)) {
    const have = await ctx.progress.step(`Checking the ${ARCH_ISO} you have`, () => sha256File(p.path, ctx.signal));
    if (have.digest('hex') === expected) {
      const verified = await checkSignature(ctx, mirror, p.path);
      if (verified instanceof VmsError) throw verified; // the user's file stays: it is theirs
      if (existsSync(p.part)) {
        await removePart(p);
        ctx.progress.note(`removed a partial download left over (${p.part})`);
      }
      return result(expected, (await stat(p.path)).size, 0, verified, true);
    }
    ctx.progress.note(`the ${ARCH_ISO} you have is not the current one: it is replaced once the new one is verified`);
  }

  try {
    const plan = resumeFrom(await partState(p), expected);
    if (plan.note) ctx.progress.note(plan.note);
    await writeFile(p.record, `${expected}  ${ARCH_ISO}\n`).catch(writing(p.record));
    const hash =
      plan.from > 0
        ? await ctx.progress.step('Reading the partial download', () => sha256File(p.part, ctx.signal))
        : createHash('sha256');
    const got = await ctx.progress.step(`Downloading ${ARCH_ISO}`, () =>
      download(ctx, new URL(ARCH_ISO, mirror).href, p, plan.from, hash, idleTimeoutMs ?? IDLE_TIMEOUT_MS),
    );
    if (got.sha256 !== expected) {
      await removePart(p);
      throw mirrorError(
        'failed',
        `the downloaded ${ARCH_ISO} does not match the mirror's sha256 (expected ${expected}, got ${got.sha256}); it was deleted`,
        'the mirror may be half-way through an update: try again later, or ',
      );
    }
    const verified = await checkSignature(ctx, mirror, p.part);
    if (verified instanceof VmsError) {
      await removePart(p);
      const { code, hint, data } = verified;
      throw new VmsError(code, `${verified.message}; the download was deleted`, hint, undefined, undefined, data);
    }
    await rename(p.part, p.path);
    await rm(p.record, { force: true });
    return result(expected, (await stat(p.path)).size, got.resumedFrom, verified, false);
  } catch (err) {
    if (isInterrupt(err) || ctx.signal?.aborted) {
      throw interrupted(
        existsSync(p.part) ? `the partial download is kept (${p.part}): \`vms iso fetch\` resumes it` : undefined,
      );
    }
    throw err;
  }
}

// ---- vms iso list -----------------------------------------------------------------------------------------------

export interface IsoEntry {
  name: string;
  path: string;
  bytes: number;
  /** Modification time, ISO 8601. */
  modified: string;
  ageDays: number;
  /** The one `vms create` uses when no --iso is given. */
  default: boolean;
}

export interface IsoList {
  dir: string;
  isos: IsoEntry[];
  /** A broken or interrupted `vms iso fetch` that the next one resumes. */
  partial?: { path: string; bytes: number };
}

/** The *.iso files in the ISO dir (the default first, then by name); a missing dir is an empty list. */
export async function listIsos(ctx: Context, now = Date.now()): Promise<IsoList> {
  const dir = ctx.config.isoDir.value;
  const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[];
    throw new VmsError('failed', `cannot read the ISO dir ${dir}: ${err.message}`);
  });
  const isos: IsoEntry[] = [];
  for (const name of names.filter((n) => n.toLowerCase().endsWith('.iso')).sort()) {
    const path = join(dir, name);
    const s = await stat(path).catch(() => undefined);
    if (!s?.isFile()) continue;
    isos.push({
      name,
      path,
      bytes: s.size,
      modified: s.mtime.toISOString(),
      ageDays: Math.floor((now - s.mtimeMs) / 86_400_000),
      default: name === ARCH_ISO,
    });
  }
  isos.sort((a, b) => Number(b.default) - Number(a.default));
  const { part } = isoPaths(dir);
  const partBytes = await stat(part).then(
    (s) => s.size,
    () => undefined,
  );
  return { dir, isos, ...(partBytes === undefined ? {} : { partial: { path: part, bytes: partBytes } }) };
}
