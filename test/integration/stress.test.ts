import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { testbed } from '../helpers/testbed.js';

// Rounds of random concurrent commands on a few VMs (issue 10's stress test): clone, destroy, disk add, snapshot,
// set --notes and --rename, start and kill, four at once. Every command must either do its work or refuse cleanly
// (busy, gone, in the wrong state): exit 0, 3 or 4, never a failure; after each round the full invariants hold
// (no orphan file, directory or journal; every base read-only with its sha256 unchanged; every chain readable;
// metadata agrees with libvirt). The seed is printed, and VMS_STRESS_SEED replays a run.

const bed = testbed('stress');
after(() => bed.cleanup());

const ROUNDS = Number(process.env.VMS_STRESS_ROUNDS ?? 8);
const PER_ROUND = 4;
const SEED = Number(process.env.VMS_STRESS_SEED ?? Date.now() % 1_000_000);

/** mulberry32: a small seeded PRNG, so a failing run can be replayed. */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test(`stress: ${ROUNDS} rounds of ${PER_ROUND} concurrent commands, invariants after each (seed ${SEED})`, async () => {
  const random = prng(SEED);
  const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)]!;
  let serial = 0;
  const fresh = () => bed.name(`s${++serial}`);
  for (let i = 0; i < 3; i++) await bed.createTiny(fresh());
  const outcomes = new Map<string, number>();
  const log: string[] = [];

  for (let round = 1; round <= ROUNDS; round++) {
    const vms = bed.domains();
    const commands: string[][] = [];
    for (let i = 0; i < PER_ROUND; i++) {
      const vm = vms.length ? pick(vms) : fresh();
      const few = vms.length < 3;
      const many = vms.length > 6;
      const kind = pick(
        few
          ? ['clone', 'clone', 'disk', 'snapshot', 'notes']
          : many
            ? ['destroy', 'destroy', 'disk', 'notes', 'start', 'kill']
            : ['clone', 'destroy', 'disk', 'snapshot', 'notes', 'rename', 'start', 'kill'],
      );
      const args: Record<string, string[]> = {
        clone: ['clone', vm, fresh()],
        destroy: ['destroy', vm, '--yes'],
        disk: ['disk', 'add', vm, '--size', '8M'],
        snapshot: ['snapshot', 'create', vm],
        notes: ['set', vm, '--notes', `round ${round}`],
        rename: ['set', vm, '--rename', fresh()],
        start: ['start', vm],
        kill: ['kill', vm],
      };
      commands.push(args[kind]!);
    }
    const results = await Promise.all(
      commands.map((c) => bed.vms(c, { timeoutMs: 300_000, env: { VMS_LOCK_WAIT: '2' } })),
    );
    for (const [i, r] of results.entries()) {
      const what = `${commands[i]![0]}${commands[i]![0] === 'disk' || commands[i]![0] === 'snapshot' ? ' ' + commands[i]![1] : ''}`;
      const key = `${what}: exit ${r.code}`;
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
      log.push(
        `round ${round}: vms ${commands[i]!.join(' ')} → ${r.code}${r.code ? ` (${r.stderr.split('\n').find((l) => l.startsWith('error:'))})` : ''}`,
      );
      // Refusals are fine (busy: 4, gone: 3, a running VM's snapshot of a UEFI disk …); failing is not.
      assert.ok(
        [0, 3, 4].includes(r.code),
        `round ${round}: vms ${commands[i]!.join(' ')} exited ${r.code}:\n${r.stderr}\n${log.join('\n')}`,
      );
    }
    assert.deepEqual(bed.invariants(), [], `after round ${round}:\n${log.join('\n')}`);
  }
  const summary = [...outcomes]
    .sort()
    .map(([k, n]) => `${k} ×${n}`)
    .join(', ');
  console.log(`stress seed ${SEED}: ${ROUNDS} rounds, ${ROUNDS * PER_ROUND} commands: ${summary}`);
  assert.ok(
    [...outcomes.keys()].some((k) => k.endsWith('exit 0')),
    'some commands did their work',
  );
});
