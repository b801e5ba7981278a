import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { Virsh } from '../../src/libvirt/virsh.js';
import { ExecaRunner, type Runner } from '../../src/runner.js';
import { virshCommands } from '../helpers/virsh-tokenizer.js';

// The unit tests read Virsh.batch's command line back with a port of virsh's tokenizer (test/helpers/
// virsh-tokenizer.ts). Here both meet the real virsh once: its `echo` builtin prints its arguments, on the test
// driver (test:///default lives inside the virsh process: no libvirtd is involved).

const URI = 'test:///default';

/** Arguments a VM name, a path or a guest-agent command could carry; none blank, none starting with '-'. */
const AWKWARD = [
  'plain',
  'two words',
  "it's",
  'say "hi"',
  `'"'`,
  'back\\slash',
  'ends with a backslash\\',
  '\\"',
  'semi;colon',
  ';',
  'new\nline',
  'tab\there',
  '#not a comment',
  'a#b',
  '{"execute":"guest-exec","arguments":{"path":"/bin/sh","arg":["-c","echo \\"$HOME\\"; ls"]}}',
  '$HOME `id` $(id) *?[a]',
  'ünïcødé ✔ 日本',
  '  padded  ',
];

/** The real runner, noting each virsh command line it is given. */
function recordingRunner(lines: string[]): Runner {
  const real = new ExecaRunner();
  return {
    run: (cmd, args, opts) => {
      if (cmd === 'virsh') lines.push(args[args.length - 1]!);
      return real.run(cmd, args, opts);
    },
    interactive: (cmd, args) => real.interactive(cmd, args),
  };
}

test('Virsh.batch: awkward arguments reach the real virsh unchanged, and the port of its tokenizer agrees', async () => {
  const lines: string[] = [];
  const commands = [...AWKWARD.map((s) => ['echo', s]), ['echo', 'several', 'a b', "c'd", 'e;f']];
  const out = await new Virsh(recordingRunner(lines), URI).batch(commands);
  assert.deepEqual(out, [...AWKWARD.map((s) => `${s}\n`), "several a b c'd e;f\n"]);
  assert.equal(lines.length, 1, 'one virsh process for the whole batch');
  const read = virshCommands(lines[0]!).filter((c) => !c[1]?.startsWith('@@vms-')); // the batch's own markers
  assert.deepEqual(read, commands);
});

/** What the real virsh prints for a line of `echo` commands: stdout, or its error. */
function realVirsh(line: string): { stdout: string } | { error: string } {
  const r = spawnSync('virsh', ['-c', URI, line], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  if (r.status === 0) return { stdout: r.stdout };
  return { error: r.stderr.trim() };
}

/** What the tokenizer port predicts for the same line (`echo` prints its arguments and a newline). */
function portedVirsh(line: string): { stdout: string } | { error: string } {
  try {
    const commands = virshCommands(line);
    for (const [cmd] of commands) assert.equal(cmd, 'echo', `only echo lines are compared: ${line}`);
    return { stdout: commands.map((c) => `${c.slice(1).join(' ')}\n`).join('') };
  } catch (err) {
    return { error: `error: ${(err as Error).message}` };
  }
}

test("the tokenizer port reads hand-written lines as the real virsh does: quotes, escapes, ';', newlines, '#'", () => {
  const lines = [
    'echo a b',
    'echo "a b"',
    'echo a\\ b',
    `echo 'it''s'`,
    `echo 'a\\b'`,
    'echo "a\\"b"',
    'echo "back\\\\slash"',
    `echo a"b c"d a'b c'd`,
    'echo a; echo b',
    '  ;; echo x;;',
    'echo a\necho b',
    'echo "x\ny"',
    `echo 'x\ny'`,
    'echo a\\\nb',
    'echo a #b',
    'echo a#b',
    'echo "a#b" #c; echo d\necho e',
    '#only a comment',
    'echo "a\tb"',
    `echo 'unterminated`,
    'echo "unterminated',
    'echo dangling\\',
    'echo ünïcødé',
  ];
  for (const line of lines) assert.deepEqual(portedVirsh(line), realVirsh(line), JSON.stringify(line));
});
