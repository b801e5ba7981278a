// A StrykerJS test runner that runs the node:test unit files in its own process (see node-test-shim.mjs for why).
// Each run imports the test files afresh (a query string makes a new module instance, so their top-level set-up and
// `after` hooks behave as under node:test), while src/ stays loaded: Stryker's mutant switching reads the active
// mutant at run time. Mutants that act while a module loads ("static") get a fresh process from Stryker itself,
// because this runner says it cannot reload its environment.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { register } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { commonTokens, declareClassPlugin, PluginKind, tokens } from '@stryker-mutator/api/plugin';
import {
  determineHitLimitReached,
  DryRunStatus,
  TestStatus,
  toMutantRunResult,
} from '@stryker-mutator/api/test-runner';

const NS = '__stryker__';
let runNumber = 0;

class NodeTestRunner {
  static inject = tokens(commonTokens.options, commonTokens.logger);

  constructor(options, log) {
    this.log = log;
    this.dir = options.nodeTest?.dir ?? 'test/unit';
    this.strayErrors = [];
    this.running = undefined; // the failures list of the test that runs now
  }

  capabilities() {
    return { reloadEnvironment: false };
  }

  async init() {
    // Mutants of code that deletes files run here: they must find only a temp dir of their own (scripts/mutate.mjs
    // sets one for the run; this worker takes its own below it, so nothing outside can be reached through tmpdir()).
    process.env.TMPDIR = mkdtempSync(join(tmpdir(), 'worker-'));
    const { register: registerTsx } = await import('tsx/esm/api');
    registerTsx();
    register(new URL('./redirect-node-test.mjs', import.meta.url));
    this.shim = await import('./node-test-shim.mjs');
    this.files = readdirSync(this.dir, { recursive: true })
      .map(String)
      .filter((f) => f.endsWith('.test.ts'))
      .sort()
      .map((f) => join(this.dir, f));
    // A mutant may throw from a timer or a promise nobody awaits: it fails the test that runs, as under node:test.
    const stray = (err) => (this.running ? this.running.push(err) : this.strayErrors.push(err));
    process.on('uncaughtException', stray);
    process.on('unhandledRejection', stray);
    globalThis[NS] ??= {};
  }

  async dryRun(options) {
    const ns = globalThis[NS];
    ns.mutantCoverage = { static: {}, perTest: {} };
    // Only the files that import a mutated module can cover a mutant: a run on one folder skips the rest.
    const mutated = options.files?.map((f) => resolve(f));
    const files = options.testFiles?.length
      ? options.testFiles.map((f) => relative(process.cwd(), f))
      : mutated
        ? this.files.filter((f) => mutated.some((m) => this.imports(f).has(m)))
        : this.files;
    const result = await this.run(files, undefined, { bail: false, coverage: true });
    const mutantCoverage = ns.mutantCoverage;
    ns.mutantCoverage = undefined;
    return { status: DryRunStatus.Complete, tests: result.tests, mutantCoverage };
  }

  async mutantRun(options) {
    const ns = globalThis[NS];
    const filter = options.testFilter ? new Set(options.testFilter) : undefined;
    // A static mutant comes with no test filter (Stryker would run every test): only files that import its module,
    // directly or through others, can see it.
    const files = filter
      ? this.files.filter((f) => [...filter].some((id) => id.startsWith(`${f} > `)))
      : this.files.filter((f) => this.imports(f).has(resolve(options.sandboxFileName)));
    ns.hitLimit = options.hitLimit;
    ns.hitCount = options.hitLimit === undefined ? undefined : 0;
    try {
      const result = await this.run(files, filter, {
        bail: !options.disableBail,
        mutant: options.activeMutant.id,
        // 'static': the mutant acts while modules load, so it is active before the first import (a fresh process).
        loadWithMutant: options.mutantActivation === 'static',
      });
      const timeout = determineHitLimitReached(ns.hitCount, ns.hitLimit);
      if (timeout) return toMutantRunResult(timeout);
      return toMutantRunResult({ status: DryRunStatus.Complete, tests: result.tests });
    } finally {
      ns.activeMutant = undefined;
      ns.hitLimit = undefined;
      ns.hitCount = undefined;
    }
  }

  /** Every local module a file imports, directly or through others (read from the sources, `.js` → `.ts`). */
  imports(file, seen = new Set()) {
    const path = resolve(file);
    if (seen.has(path)) return seen;
    seen.add(path);
    for (const [, spec] of readFileSync(path, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      const target = resolve(dirname(path), spec.replace(/\.js$/, '.ts'));
      if (existsSync(target)) this.imports(target, seen);
    }
    return seen;
  }

  /** Imports each file, then runs its tests (those in `filter`, when given) one after another. */
  async run(files, filter, { bail, coverage, mutant, loadWithMutant }) {
    // A mutant that emptied the temp dir took this worker's dir with it: later runs must not fail for that.
    mkdirSync(process.env.TMPDIR, { recursive: true });
    const tests = [];
    const ns = globalThis[NS];
    for (const file of files) {
      ns.activeMutant = loadWithMutant ? mutant : undefined;
      runNumber++;
      if (this.log.isDebugEnabled()) this.log.debug(`importing ${file}`);
      const url = `${pathToFileURL(resolve(file)).href}?stryker-run=${runNumber}`;
      let tree;
      try {
        await import(url);
        tree = this.shim.takeCollected();
      } catch (err) {
        this.shim.takeCollected();
        tests.push(failed(`${file} > (load)`, file, err, 0));
        if (bail) break;
        continue;
      }
      ns.activeMutant = mutant;
      const stop = await this.runSuite(tree, file, [], filter, { tests, bail, coverage });
      ns.activeMutant = undefined;
      if (stop) break;
    }
    return { tests };
  }

  /** Runs a suite's tests depth first with its hooks; returns true when a failure should stop the run (bail). */
  async runSuite(suite, file, path, filter, state, eachHooks = { before: [], after: [] }) {
    const wanted = (node, nodePath) =>
      node.kind === 'test'
        ? !filter || filter.has(id(file, nodePath))
        : node.children.some((c) => wanted(c, [...nodePath, c.name]));
    if (!wanted(suite, path)) return false;
    const hooks = {
      before: [...eachHooks.before, ...suite.beforeEach],
      after: [...suite.afterEach, ...eachHooks.after],
    };
    const failures = [];
    this.running = failures;
    try {
      for (const fn of suite.before) await fn();
    } catch (err) {
      state.tests.push(failed(`${id(file, path)} > (before)`, file, err, 0));
      this.running = undefined;
      return state.bail;
    }
    let stop = false;
    for (const child of suite.children) {
      const childPath = [...path, child.name];
      if (child.kind === 'suite') {
        if (child.skip) continue;
        stop = await this.runSuite(child, file, childPath, filter, state, hooks);
      } else if (!child.skip && wanted(child, childPath)) {
        const result = await this.runTest(child, file, childPath, hooks, state.coverage);
        state.tests.push(result);
        stop = result.status === TestStatus.Failed && state.bail;
      }
      if (stop) break;
    }
    this.running = [];
    for (const fn of suite.after) await Promise.resolve(fn()).catch(() => {});
    this.running = undefined;
    return stop;
  }

  async runTest(node, file, path, hooks, coverage) {
    const testId = id(file, path);
    const ns = globalThis[NS];
    const failures = [];
    this.running = failures;
    if (coverage) ns.currentTestId = testId;
    const started = Date.now();
    const subtest = async (name, fn) => {
      const t = new this.shim.TestContext(name, subtest);
      try {
        await fn(t);
      } catch (err) {
        failures.push(err);
      } finally {
        await cleanUp(t, failures);
      }
    };
    const t = new this.shim.TestContext(node.name, subtest);
    try {
      for (const fn of hooks.before) await fn(t);
      await node.fn(t);
    } catch (err) {
      failures.push(err);
    } finally {
      for (const fn of hooks.after) await Promise.resolve(fn(t)).catch((err) => failures.push(err));
      await cleanUp(t, failures);
      if (coverage) ns.currentTestId = undefined;
      this.running = undefined;
    }
    const spent = Date.now() - started;
    if (failures.length) return failed(testId, file, failures[0], spent);
    return { id: testId, name: testId, fileName: file, timeSpentMs: spent, status: TestStatus.Success };
  }

  async dispose() {}
}

async function cleanUp(t, failures) {
  for (const fn of t.afters.reverse()) await Promise.resolve(fn()).catch((err) => failures.push(err));
  t.mock.reset();
}

function id(file, path) {
  return [file, ...path].join(' > ');
}

function failed(testId, file, err, spent) {
  const message = err instanceof Error ? `${err.message}` : String(err);
  return {
    id: testId,
    name: testId,
    fileName: file,
    timeSpentMs: spent,
    status: TestStatus.Failed,
    failureMessage: message,
  };
}

export const strykerPlugins = [declareClassPlugin(PluginKind.TestRunner, 'node-test', NodeTestRunner)];
