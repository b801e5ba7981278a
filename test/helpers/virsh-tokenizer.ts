/**
 * Splits a virsh command line into commands and arguments the way virsh itself does (a port of
 * vshCommandStringGetArg in libvirt's tools/vsh.c), so unit tests can read back what Virsh.batch sends:
 * - blanks end a token outside quotes; ';' and a newline also end the command;
 * - '…' is literal (a backslash in it too) and may stay open to the end; "…" groups, and must be closed;
 * - a backslash escapes the next character outside '…' (a backslash-newline joins lines); one at the very end is
 *   an error;
 * - '#' at the start of a token begins a comment up to the end of the line.
 * test/integration/virsh-quoting.test.ts holds it against the real virsh.
 */
export function virshCommands(line: string): string[][] {
  const commands: string[][] = [];
  let args: string[] = [];
  const endCommand = () => {
    if (args.length) commands.push(args);
    args = [];
  };
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (c === ' ' || c === '\t') {
      i++;
      continue;
    }
    if (c === ';' || c === '\n') {
      endCommand();
      i++;
      continue;
    }
    if (c === '#') {
      while (i < line.length && line[i] !== '\n') i++;
      continue;
    }
    let token = '';
    let sq = false;
    let dq = false;
    while (i < line.length) {
      const ch = line[i]!;
      if (!sq && !dq && (ch === ' ' || ch === '\t' || ch === ';' || ch === '\n')) break;
      if (!dq && ch === "'") {
        sq = !sq;
        i++;
        continue;
      }
      if (!sq && ch === '"') {
        dq = !dq;
        i++;
        continue;
      }
      if (!sq && ch === '\\') {
        if (++i === line.length) throw new Error('dangling \\');
        if (line[i] === '\n' && !dq) {
          i++;
          continue;
        }
      }
      token += line[i++];
    }
    if (dq) throw new Error('missing "');
    args.push(token);
  }
  endCommand();
  return commands;
}
