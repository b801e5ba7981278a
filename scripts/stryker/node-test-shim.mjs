// A stand-in for `node:test` used only under mutation testing (scripts/stryker/node-test-runner.mjs): it collects the
// tests a file declares instead of running them, so the runner can run them in its own process, over and over, with
// one mutant active at a time. Node 20's test runner cannot run files in process (isolation=none is Node 22), and a
// new Node + tsx process per mutant costs ~0.5 s of CPU; in process a fake-runner test takes milliseconds.
// It covers what the unit tests use: test/it, describe, before/after/beforeEach/afterEach, t.after, t.skip, t.todo,
// t.test, t.mock, t.diagnostic, t.name, and the { skip, todo } options.
import { mock as realMock } from 'node:test';

const MockTracker = realMock.constructor;

/** The suite tree of the file being imported; taken by the runner with takeCollected(). */
let root = newSuite('', undefined);
let current = root;

function newSuite(name, parent) {
  return {
    kind: 'suite',
    name,
    parent,
    children: [],
    before: [],
    after: [],
    beforeEach: [],
    afterEach: [],
    skip: false,
  };
}

function parseArgs(args) {
  let [name, options, fn] = args;
  if (typeof name === 'function') [name, options, fn] = [name.name || '<anonymous>', {}, name];
  else if (typeof options === 'function') [options, fn] = [{}, options];
  return { name: String(name ?? '<anonymous>'), options: options ?? {}, fn };
}

export function test(...args) {
  const { name, options, fn } = parseArgs(args);
  current.children.push({ kind: 'test', name, fn, skip: Boolean(options.skip || options.todo) });
}
test.skip = (...args) => test(parseArgs(args).name, { skip: true }, () => {});
test.todo = test.skip;
test.only = test;
export const it = test;

export function describe(...args) {
  const { name, options, fn } = parseArgs(args);
  const suite = newSuite(name, current);
  suite.skip = Boolean(options.skip || options.todo);
  current.children.push(suite);
  const outer = current;
  current = suite;
  try {
    fn?.();
  } finally {
    current = outer;
  }
}
describe.skip = (...args) => describe(parseArgs(args).name, { skip: true }, parseArgs(args).fn);
describe.todo = describe.skip;
describe.only = describe;
export const suite = describe;

export const before = (fn) => current.before.push(fn);
export const after = (fn) => current.after.push(fn);
export const beforeEach = (fn) => current.beforeEach.push(fn);
export const afterEach = (fn) => current.afterEach.push(fn);
export const mock = realMock;
export { MockTracker };
export default test;

/** The tests the last imported file declared; the next file starts from an empty tree. */
export function takeCollected() {
  const taken = root;
  root = newSuite('', undefined);
  current = root;
  return taken;
}

class SkipSignal extends Error {}

/** What a test function receives as `t`. */
export class TestContext {
  constructor(name, runSubtest) {
    this.name = name;
    this.mock = new MockTracker();
    this.afters = [];
    this.skipped = false;
    this.runSubtest = runSubtest;
    this.signal = new AbortController().signal;
  }
  after(fn) {
    this.afters.push(fn);
  }
  skip() {
    this.skipped = true;
  }
  todo() {
    this.skipped = true;
  }
  diagnostic() {}
  plan() {}
  test(...args) {
    const { name, options, fn } = parseArgs(args);
    if (options.skip || options.todo) return Promise.resolve();
    return this.runSubtest(`${this.name} > ${name}`, fn);
  }
}
export { SkipSignal };
