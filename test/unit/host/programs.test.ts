import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { findProgram, findVirtiofsd } from '../../../src/core/host/programs.js';

const tmp = mkdtempSync(join(tmpdir(), 'vms-programs-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A directory with these files, executable or not. */
function dirWith(name: string, files: Record<string, number>): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  for (const [file, mode] of Object.entries(files)) writeFileSync(join(dir, file), '', { mode });
  return dir;
}

const plain = dirWith('plain', { gpg: 0o644, bsdtar: 0o755 });
const tools = dirWith('tools', { gpg: 0o755, xorriso: 0o755 });

test('findProgram: the first name that is an executable in some PATH dir, in the order of the names', () => {
  const path = [plain, tools].join(delimiter);
  assert.equal(findProgram(['gpg'], path), 'gpg', 'a file without x in the first dir does not count');
  assert.equal(findProgram(['xorriso', 'bsdtar'], path), 'xorriso', 'the names in order, not the dirs');
  assert.equal(findProgram(['nothing', 'bsdtar'], path), 'bsdtar');
  assert.equal(findProgram(['nothing'], path), undefined);
  assert.equal(findProgram(['gpg'], undefined), undefined);
});

test('findProgram: an empty PATH entry is not the current directory', (t) => {
  const cwd = process.cwd();
  process.chdir(tools);
  t.after(() => process.chdir(cwd));
  assert.equal(findProgram(['xorriso'], `${delimiter}${plain}`), undefined);
});

test('findVirtiofsd: the first place a distribution puts it (under root), else virtiofsd on PATH', () => {
  const root = (name: string, places: string[]) => {
    for (const place of places) {
      mkdirSync(join(tmp, name, dirname(place)), { recursive: true });
      writeFileSync(join(tmp, name, place), '', { mode: 0o755 });
    }
    return join(tmp, name);
  };
  const bin = dirWith('bin', { virtiofsd: 0o755 });
  const all = root('all', ['usr/lib/virtiofsd', 'usr/libexec/virtiofsd', 'usr/lib/qemu/virtiofsd']);
  assert.equal(findVirtiofsd(bin, all), join(all, 'usr/lib/virtiofsd'));
  const fedora = root('fedora', ['usr/libexec/virtiofsd', 'usr/lib/qemu/virtiofsd']);
  assert.equal(findVirtiofsd(bin, fedora), join(fedora, 'usr/libexec/virtiofsd'));
  const debian = root('debian', ['usr/lib/qemu/virtiofsd']);
  assert.equal(findVirtiofsd(bin, debian), join(debian, 'usr/lib/qemu/virtiofsd'));
  const none = root('none', []);
  assert.equal(findVirtiofsd(bin, none), 'virtiofsd', 'found on PATH: its name');
  assert.equal(findVirtiofsd(plain, none), undefined);
});
