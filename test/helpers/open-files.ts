// Shared by tests of code that must close what it opens (not a test file itself).
import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

/** The files this process has open now (Linux): a transcript or log left open shows here. */
export const openFiles = (): string[] =>
  readdirSync('/proc/self/fd').flatMap((fd) => {
    try {
      return [readlinkSync(join('/proc/self/fd', fd))];
    } catch {
      return []; // the fd readdir itself used, closed meanwhile
    }
  });
