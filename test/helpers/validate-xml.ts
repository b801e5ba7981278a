// Shared by the domain XML tests (not a test file itself): validates a document against libvirt's own RelaxNG
// schemas with the real `virt-xml-validate` (libvirt-clients). Missing tool = a clear failure, never a skip.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let dir: string | undefined;
let count = 0;

export function assertValidDomainXml(xml: string, label: string): void {
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
}
