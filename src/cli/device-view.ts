// Shared by `vms nic list` and `vms serial list`: where a device is, said only when the running VM and its saved
// definition disagree (something plugged in or out that takes effect at the next start, or was plugged in live only).
export function placeNote(d: { inConfig: boolean; live?: boolean }): string {
  if (d.live === undefined || (d.live && d.inConfig)) return '';
  return d.live ? 'until the VM stops (not in its config)' : 'from the next start';
}
