// Shared by the device tests (not a test file itself): a Progress that writes down what a command tells its user.
import type { Progress } from '../../src/core/progress.js';

/** A Progress that writes down each step's title and each note (`note: …`), in order. */
export function stepLog(): { log: string[]; progress: Progress } {
  const log: string[] = [];
  return {
    log,
    progress: {
      step: (title, fn) => (log.push(title), fn()),
      note: (message) => void log.push(`note: ${message}`),
    },
  };
}
