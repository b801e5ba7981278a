// Hints print commands for the user to paste into a shell. A path or name in them may hold anything a file name can
// (spaces, quotes, `$(…)`), so it is quoted: pasted, the command gets exactly that word and runs nothing else.

/** Characters no POSIX shell treats specially anywhere in a word (`=` and `:` are special only in some positions). */
const SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * One shell word for `s`: plain safe strings (`work`, `/var/lib/vms/x.qcow2`) unchanged, anything else in single
 * quotes, where nothing is special but the quote itself, which becomes `'\''` (close, an escaped quote, reopen).
 */
export function shellQuote(s: string): string {
  if (SAFE.test(s)) return s;
  return `'${s.replaceAll("'", `'\\''`)}'`;
}
