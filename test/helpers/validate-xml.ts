// Shared by the domain XML tests (not a test file itself): validates a document against libvirt's own RelaxNG
// schemas with the real `virt-xml-validate` (libvirt-clients). Missing tool = a clear failure, never a skip.
// A document that passed once is remembered by the hash of its text and of the schema (a file per hash under the temp
// dir): one validation costs a process, and mutation testing runs these tests thousands of times.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SCHEMAS = ['/usr/share/libvirt/schemas/domain.rng', '/usr/share/libvirt/schemas/domaincommon.rng'];
let schemaHash: string | undefined;

/** Where a document that passed is remembered. */
function passedMark(xml: string): string {
  if (schemaHash === undefined) {
    const hash = createHash('sha256');
    for (const path of SCHEMAS) if (existsSync(path)) hash.update(readFileSync(path));
    schemaHash = hash.digest('hex');
  }
  const dir = join(tmpdir(), 'vms-valid-domain-xml');
  mkdirSync(dir, { recursive: true });
  return join(dir, createHash('sha256').update(schemaHash).update(xml).digest('hex'));
}

let dir: string | undefined;
let count = 0;

export function assertValidDomainXml(xml: string, label: string): void {
  const mark = passedMark(xml);
  if (existsSync(mark)) return;
  if (!dir) {
    const made = mkdtempSync(join(tmpdir(), 'vms-unit-xml-'));
    process.once('exit', () => rmSync(made, { recursive: true, force: true }));
    dir = made;
  }
  const file = join(dir, `domain-${count++}.xml`);
  writeFileSync(file, xml);
  try {
    execFileSync('virt-xml-validate', [file, 'domain'], { stdio: 'pipe' });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: Buffer; stdout?: Buffer };
    if (e.code === 'ENOENT') {
      assert.fail(
        'virt-xml-validate is not installed: install libvirt-clients (apt-get install libvirt-clients) to run the domain XML tests',
      );
    }
    assert.fail(
      `${label}: virt-xml-validate rejected ${file}:\n${e.stderr?.toString() ?? ''}${e.stdout?.toString() ?? ''}\n${xml}`,
    );
  }
  rmSync(file);
  writeFileSync(mark, '');
}
