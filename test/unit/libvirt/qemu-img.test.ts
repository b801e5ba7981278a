import assert from 'node:assert/strict';
import { test } from 'node:test';
import { VmsError } from '../../../src/errors.js';
import { QemuImg } from '../../../src/libvirt/qemu-img.js';
import type { RunOptions, RunResult } from '../../../src/runner.js';
import { FakeRunner, type Expected } from '../../helpers/fake-runner.js';

// The qemu-img wrapper on the strict fake runner: each call's exact argv, the JSON it reads (real `qemu-img info`
// output of QEMU 7.2: an overlay over a qcow2 base), and how a failure reads.

/** The FakeRunner, also keeping the options each call was run with (the abort signal). */
class OptionsRunner extends FakeRunner {
  readonly options: (RunOptions | undefined)[] = [];
  override run(cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
    this.options.push(opts);
    return super.run(cmd, args, opts);
  }
}

const call = (args: string[], result?: Partial<RunResult>): Expected => ({ cmd: 'qemu-img', args, result });

const QCOW2_SPECIFIC = {
  type: 'qcow2',
  data: { compat: '1.1', 'compression-type': 'zlib', 'lazy-refcounts': false, 'refcount-bits': 16, corrupt: false },
};
const TOP = {
  'backing-filename-format': 'qcow2',
  'virtual-size': 1048576,
  filename: '/i/top.qcow2',
  'cluster-size': 65536,
  format: 'qcow2',
  'actual-size': 200704,
  'format-specific': QCOW2_SPECIFIC,
  'full-backing-filename': '/i/base.qcow2',
  'backing-filename': 'base.qcow2',
  'dirty-flag': false,
};
const BASE = {
  'virtual-size': 1048576,
  filename: '/i/base.qcow2',
  'cluster-size': 65536,
  format: 'qcow2',
  'actual-size': 200704,
  'format-specific': QCOW2_SPECIFIC,
  'dirty-flag': false,
};
/** As qemu-img prints it: indented by four. */
const printed = (value: unknown) => JSON.stringify(value, null, 4) + '\n';

/** A failing qemu-img: exit 1 and `stderr`. */
const failing = (stderr: string): Partial<RunResult> => ({ exitCode: 1, stderr });

async function assertFailure(p: Promise<unknown>, message: string, hint?: string) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof VmsError, String(err));
    assert.deepEqual(
      [err.code, err.exitCode, err.message, err.hint, err.reason],
      ['failed', 1, message, hint, undefined],
    );
    return true;
  });
}

test('create, createOverlay, convert, resize, commit: the exact argv, every format stated, and the signal passed on', async () => {
  const runner = new OptionsRunner([
    call(['create', '-q', '-f', 'qcow2', '-o', 'lazy_refcounts=on', '/i/a.qcow2', '21474836480']),
    call(['create', '-q', '-f', 'qcow2', '-b', '/i/base.qcow2', '-F', 'qcow2', '/i/top.qcow2']),
    call(['convert', '-f', 'raw', '-O', 'qcow2', '/i/a.img', '/i/copy.qcow2']),
    call(['resize', '-q', '-f', 'raw', '/i/a.img', '1073741824']),
    call(['commit', '-q', '-f', 'qcow2', '/i/top.qcow2']),
  ]);
  const signal = new AbortController().signal;
  const img = new QemuImg(runner, signal);
  await img.create('/i/a.qcow2', 20 * 2 ** 30);
  await img.createOverlay('/i/top.qcow2', '/i/base.qcow2');
  await img.convert('/i/a.img', 'raw', '/i/copy.qcow2');
  await img.resize('/i/a.img', 'raw', 2 ** 30);
  await img.commit('/i/top.qcow2');
  runner.done();
  assert.deepEqual(runner.options, Array(5).fill({ signal }));
});

test('uninterruptible: the same calls without the abort signal (clean-up after an interrupt)', async () => {
  const runner = new OptionsRunner([call(['commit', '-q', '-f', 'qcow2', '/i/top.qcow2'])]);
  await new QemuImg(runner, new AbortController().signal).uninterruptible().commit('/i/top.qcow2');
  runner.done();
  assert.deepEqual(runner.options, [{ signal: undefined }]);
});

test('info: -U, the format stated only when known; the JSON object as qemu-img printed it', async () => {
  const runner = new FakeRunner([
    call(['info', '-U', '--output=json', '/i/top.qcow2'], { stdout: printed(TOP) }),
    call(['info', '-U', '-f', 'qcow2', '--output=json', '/i/base.qcow2'], { stdout: printed(BASE) }),
  ]);
  const img = new QemuImg(runner);
  assert.deepEqual(await img.info('/i/top.qcow2'), TOP);
  assert.deepEqual(await img.info('/i/base.qcow2', 'qcow2'), BASE);
  runner.done();
});

test('chain: the image first, then each backing file', async () => {
  const runner = new FakeRunner([
    call(['info', '-U', '--backing-chain', '--output=json', '/i/top.qcow2'], { stdout: printed([TOP, BASE]) }),
  ]);
  const chain = await new QemuImg(runner).chain('/i/top.qcow2');
  runner.done();
  assert.deepEqual(chain, [TOP, BASE]);
});

test("chain with a backing file gone: a typed failure (exit 1) that says which file, from qemu-img's own line", async () => {
  const gone = "qemu-img: Could not open '/i/base.qcow2': Could not open '/i/base.qcow2': No such file or directory\n";
  const runner = new FakeRunner([
    call(['info', '-U', '--backing-chain', '--output=json', '/i/top.qcow2'], { ...failing(gone), stdout: '' }),
  ]);
  await assertFailure(
    new QemuImg(runner).chain('/i/top.qcow2'),
    "cannot read /i/top.qcow2: Could not open '/i/base.qcow2': Could not open '/i/base.qcow2': No such file or directory",
  );
  runner.done();
});

test('output that is not JSON: a typed failure naming the image and the first line printed, not a SyntaxError', async () => {
  const runner = new FakeRunner([
    call(['info', '-U', '--output=json', '/i/a.qcow2'], { stdout: 'image: /i/a.qcow2\nfile format: qcow2\n' }),
    call(['info', '-U', '--backing-chain', '--output=json', '/i/a.qcow2'], { stdout: '' }),
  ]);
  const img = new QemuImg(runner);
  await assertFailure(
    img.info('/i/a.qcow2'),
    "cannot read /i/a.qcow2: qemu-img's answer is not JSON: image: /i/a.qcow2",
  );
  await assertFailure(img.chain('/i/a.qcow2'), "cannot read /i/a.qcow2: qemu-img's answer is not JSON: (nothing)");
  runner.done();
});

test('a failure says what could not be done; a full disk adds the way out; no stderr: the exit status; only a leading "qemu-img: " is dropped', async () => {
  const runner = new FakeRunner([
    call(
      ['convert', '-f', 'qcow2', '-O', 'qcow2', '/i/a.qcow2', '/i/b.qcow2'],
      failing('qemu-img: error while writing at byte 2097152: No space left on device\n'),
    ),
    call(
      ['create', '-q', '-f', 'qcow2', '-o', 'lazy_refcounts=on', '/i/c.qcow2', '1024'],
      failing("qemu-img: /i/c.qcow2: Could not create '/i/c.qcow2': Permission denied\n"),
    ),
    call(['resize', '-q', '-f', 'qcow2', '/i/d.qcow2', '512'], { exitCode: 3 }),
    call(['commit', '-q', '-f', 'qcow2', '/i/e.qcow2'], failing('warning: x\nerror: first\nerror: qemu-img: second\n')),
  ]);
  const img = new QemuImg(runner);
  await assertFailure(
    img.convert('/i/a.qcow2', 'qcow2', '/i/b.qcow2'),
    'cannot copy /i/a.qcow2: error while writing at byte 2097152: No space left on device',
    'free some disk space, or set VMS_IMAGES_DIR to a roomier place',
  );
  await assertFailure(
    img.create('/i/c.qcow2', 1024),
    "cannot create disk /i/c.qcow2: /i/c.qcow2: Could not create '/i/c.qcow2': Permission denied",
  );
  await assertFailure(img.resize('/i/d.qcow2', 'qcow2', 512), 'cannot grow /i/d.qcow2: exit status 3');
  await assertFailure(
    img.commit('/i/e.qcow2'),
    'cannot merge /i/e.qcow2 into its backing file: first: qemu-img: second',
  );
  runner.done();
});
