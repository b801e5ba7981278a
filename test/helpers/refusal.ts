// Shared by the device tests (not a test file itself): what a refusal says, to compare in one deepEqual.
import assert from 'node:assert/strict';
import { VmsError } from '../../src/errors.js';

/** A VmsError's code, message, hint and reason. */
export type Said = [string, string, string | undefined, string | undefined];

function said(err: unknown): Said {
  assert.ok(err instanceof VmsError, String(err));
  return [err.code, err.message, err.hint, err.reason];
}

/** What the VmsError that `fn` throws says (the test fails when it throws none). */
export function refusal(fn: () => unknown): Said {
  try {
    fn();
  } catch (err) {
    return said(err);
  }
  assert.fail('no error');
}

/** What the VmsError that a command rejects with says. */
export async function rejection(p: Promise<unknown>): Promise<Said> {
  return said(
    await p.then(
      () => assert.fail('no error'),
      (e: unknown) => e,
    ),
  );
}
