import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import chalk from 'chalk';
import { cliProgress, lineProgress, lineRenderer, spinnerRenderer, type Spinner } from '../../../src/cli/progress.js';
import { EventBus } from '../../../src/core/events.js';
import { eventProgress } from '../../../src/core/progress.js';

chalk.level = 0; // the bytes of NO_COLOR / a pipe, as the integration tests and the README see them

/** Runs the same little command through a Progress: two steps (one fails), a note, a console line, a download. */
async function script(p: ReturnType<typeof lineProgress>, clock: { now: number }) {
  await p.step('Checking input', async () => {
    clock.now += 1234;
  });
  p.note('the UEFI NVRAM is not part of the snapshot');
  await p.step('Downloading archlinux-x86_64.iso', async () => {
    p.transfer!({ done: 1, total: 4, text: '1M / 4M (25%)', final: false });
    clock.now += 6000;
    p.transfer!({ done: 3, total: 4, text: '3M / 4M (75%)', final: false });
    p.transfer!({ done: 4, total: 4, text: '4M / 4M (100%)', final: true });
  });
  await p
    .step('Booting the live ISO', async () => {
      p.transcript?.('archiso login: ');
      clock.now += 2560;
      throw new Error('no prompt');
    })
    .catch(() => {});
}

describe('the plain-line renderer', () => {
  // What vms printed before progress became events (src/cli/progress.ts at 41d4b59), byte for byte.
  const before = [
    '==> Checking input\n',
    'note: the UEFI NVRAM is not part of the snapshot\n',
    '==> Downloading archlinux-x86_64.iso\n',
    '    3M / 4M (75%)\n',
    '    4M / 4M (100%)\n',
    '==> Booting the live ISO\n',
    '==> Booting the live ISO: failed after 2.6s\n',
  ];

  test('writes the same bytes as before: ==> lines, notes, download lines, failures with their time', async (t) => {
    const out: string[] = [];
    t.mock.method(process.stderr, 'write', (text: string) => out.push(text));
    const clock = { now: 1000 };
    t.mock.method(performance, 'now', () => clock.now);
    await script(lineProgress(), clock);
    assert.deepEqual(out, before);
  });

  test('-v adds the guest console as it came, where it came', async (t) => {
    const out: string[] = [];
    const clock = { now: 0 };
    t.mock.method(performance, 'now', () => clock.now);
    const bus = new EventBus('op');
    bus.on(lineRenderer(true, (text) => out.push(text)));
    await script(eventProgress(bus), clock);
    assert.deepEqual(out, [...before.slice(0, 6), 'archiso login: ', before[6]]);
  });
});

describe('the spinner renderer', () => {
  test('a spinner per step, ticked off with its time and the download it did, or failed', async (t) => {
    const clock = { now: 0 };
    t.mock.method(performance, 'now', () => clock.now);
    const spinners: { title: string; texts: string[]; done?: string }[] = [];
    const start = (title: string): Spinner => {
      const s = { title, texts: [] as string[], done: undefined as string | undefined };
      spinners.push(s);
      return {
        set text(v: string) {
          s.texts.push(v);
        },
        get text() {
          return s.texts.at(-1) ?? title;
        },
        succeed: (text) => (s.done = `✔ ${text}`),
        fail: (text) => (s.done = `✖ ${text}`),
      };
    };
    const written: string[] = [];
    const bus = new EventBus('op');
    bus.on(spinnerRenderer(start, (text) => written.push(text)));
    await script(eventProgress(bus), clock);
    assert.deepEqual(
      spinners.map((s) => [s.title, s.done]),
      [
        ['Checking input', '✔ Checking input 1.2s'],
        ['Downloading archlinux-x86_64.iso', '✔ Downloading archlinux-x86_64.iso  4M / 4M (100%) 6.0s'],
        ['Booting the live ISO', '✖ Booting the live ISO'],
      ],
    );
    assert.deepEqual(spinners[1]!.texts, [
      'Downloading archlinux-x86_64.iso  [#####...............] 1M / 4M (25%)',
      'Downloading archlinux-x86_64.iso  [###############.....] 3M / 4M (75%)',
      'Downloading archlinux-x86_64.iso  [####################] 4M / 4M (100%)',
    ]);
    assert.deepEqual(written, ['! the UEFI NVRAM is not part of the snapshot\n'], 'no console without -v');
  });
});

describe("the CLI's choice of renderers", () => {
  test('--json renders nothing, --events FILE still gets every event with the operation id', async (t) => {
    const out: string[] = [];
    t.mock.method(process.stderr, 'write', (text: string) => out.push(text));
    const file = join(mkdtempSync(join(tmpdir(), 'vms-events-')), 'e.ndjson');
    const p = await cliProgress({ operationId: 'op-9', json: true, spinner: false, verbose: false, eventsFile: file });
    await script(p, { now: 0 });
    assert.deepEqual(out, []);
    const events = readFileSync(file, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      events.map((e) => e.type),
      [
        'step.start',
        'step.end',
        'note',
        'step.start',
        'transfer',
        'transfer',
        'transfer',
        'step.end',
        'step.start',
        'transcript',
        'step.end',
      ],
    );
    assert.ok(events.every((e) => e.operation === 'op-9'));
  });

  test('without a terminal: plain lines, and the same events in the file', async (t) => {
    const out: string[] = [];
    t.mock.method(process.stderr, 'write', (text: string) => out.push(text));
    const file = join(mkdtempSync(join(tmpdir(), 'vms-events-')), 'e.ndjson');
    const p = await cliProgress({ operationId: 'op', json: false, spinner: false, verbose: false, eventsFile: file });
    await p.step('Starting a', async () => {});
    assert.deepEqual(out, ['==> Starting a\n']);
    assert.equal(readFileSync(file, 'utf8').trimEnd().split('\n').length, 2);
  });
});
