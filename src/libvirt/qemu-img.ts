import { VmsError } from '../errors.js';
import { errorSummary, type Runner } from '../runner.js';

export interface ImageInfo {
  filename: string;
  format: string;
  'virtual-size': number;
  'actual-size'?: number;
  'backing-filename'?: string;
  'full-backing-filename'?: string;
  'backing-filename-format'?: string;
}

export class QemuImg {
  constructor(
    private readonly runner: Runner,
    private readonly signal?: AbortSignal,
  ) {}

  private async run(args: string[], what: string): Promise<string> {
    const r = await this.runner.run('qemu-img', args, { signal: this.signal });
    if (r.exitCode !== 0) {
      const line = errorSummary(r).replace(/^qemu-img:\s*/, '');
      const full = /No space left on device/i.test(r.stderr);
      throw new VmsError(
        'failed',
        `${what}: ${line}`,
        full ? 'free some disk space, or set VMS_IMAGES_DIR to a roomier place' : undefined,
      );
    }
    return r.stdout;
  }

  async create(path: string, sizeBytes: number): Promise<void> {
    await this.run(
      ['create', '-q', '-f', 'qcow2', '-o', 'lazy_refcounts=on', path, String(sizeBytes)],
      `cannot create disk ${path}`,
    );
  }

  /** A new qcow2 whose backing file is `base` (format stated, never probed: probing a base is unsafe). */
  async createOverlay(path: string, base: string): Promise<void> {
    await this.run(['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', path], `cannot create overlay ${path}`);
  }

  /** An independent qcow2 copy with the whole backing chain flattened into it (the source format stated, never probed). */
  async convert(source: string, sourceFormat: string, target: string): Promise<void> {
    await this.run(['convert', '-f', sourceFormat, '-O', 'qcow2', source, target], `cannot copy ${source}`);
  }

  /** Grows an image; the format is stated, never probed (a raw image the guest wrote a qcow2 header into stays raw). */
  async resize(path: string, format: string, sizeBytes: number): Promise<void> {
    await this.run(['resize', '-q', '-f', format, path, String(sizeBytes)], `cannot grow ${path}`);
  }

  /** Writes an overlay's data down into its backing file (undoing a freeze that no clone came to stand on). */
  async commit(overlay: string): Promise<void> {
    await this.run(['commit', '-q', '-f', 'qcow2', overlay], `cannot merge ${overlay} into its backing file`);
  }

  /** The same QemuImg without the abort signal: for clean-up work that must run after an interrupt. */
  uninterruptible(): QemuImg {
    return new QemuImg(this.runner);
  }

  /** `format`, when known (a backing file's, from the image above it), is stated: then the file is not probed. */
  async info(path: string, format?: string): Promise<ImageInfo> {
    const what = `cannot read ${path}`;
    return parseJson(
      await this.run(['info', '-U', ...(format ? ['-f', format] : []), '--output=json', path], what),
      what,
    );
  }

  /** The image and all its backing files, the image first. -U: readable while a running VM holds its lock. */
  async chain(path: string): Promise<ImageInfo[]> {
    const what = `cannot read ${path}`;
    return parseJson(await this.run(['info', '-U', '--backing-chain', '--output=json', path], what), what);
  }
}

/** qemu-img's --output=json answer; anything else is a failure of the tool (a typed error, not a SyntaxError). */
function parseJson<T>(out: string, what: string): T {
  try {
    return JSON.parse(out) as T;
  } catch {
    const line = out.trim().split('\n')[0] || '(nothing)';
    throw new VmsError('failed', `${what}: qemu-img's answer is not JSON: ${line}`);
  }
}
