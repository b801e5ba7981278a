// What a terminal shows once a program's output has been drawn on it: enough of a VT100 to read back a spinner that
// redraws its line (carriage return, line feed, cursor to column, cursor up, erase in line). Other escape
// sequences (colours, cursor visibility, synchronized output) move nothing and are skipped.

// eslint-disable-next-line no-control-regex -- a terminal's control sequences are what is parsed
const CSI = /^\x1b\[([?\d;]*)([A-Za-z])/;

/** The screen's lines, trailing blanks trimmed, after `output` (a pty's output, e.g. from script(1)). */
export function terminalScreen(output: string): string[] {
  const lines: string[][] = [[]];
  let row = 0;
  let col = 0;
  const chars = [...output]; // code points: one cell each (the spinner's braille frames and ✔ are single-width)
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch === '\x1b') {
      const m = CSI.exec(chars.slice(i, i + 16).join(''));
      if (!m) continue;
      i += [...m[0]].length - 1;
      const n = Number(m[1]) || 0;
      const line = lines[row]!;
      if (m[2] === 'G') col = Math.max(1, n) - 1;
      else if (m[2] === 'A') row = Math.max(0, row - Math.max(1, n));
      else if (m[2] === 'K' && !m[1]?.startsWith('?')) {
        if (n === 0) line.splice(col);
        else if (n === 1) line.fill(' ', 0, col + 1);
        else line.length = 0;
      }
      continue;
    }
    if (ch === '\r') col = 0;
    else if (ch === '\n') {
      row++;
      while (lines.length <= row) lines.push([]);
    } else {
      const line = lines[row]!;
      while (line.length < col) line.push(' ');
      line[col++] = ch;
    }
  }
  return lines.map((l) => l.join('').trimEnd());
}
