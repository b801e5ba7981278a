// Shared by the install and apply tests (not a test file itself): a guest on a VM's serial socket that vms can log
// into, push files to and run guest scripts in (install.sh, profiles), answering as each test's script says.
import { startGuest, type Guest, pushShell, begin, end } from './fake-guest.js';

/** What a guest script does when run: the phases it announces, what it prints, its exit status. */
export interface ScriptRun {
  phases?: [name: string, seconds: number][];
  output?: string;
  status?: number;
  /** It never ends (after its phases and output). */
  hangs?: boolean;
  /** What it does on the host meanwhile (writes into a shared folder, say). */
  does?: () => void;
}

const SCRIPT = /^cd (\S+) && "\$\(command -v bash \|\| command -v sh\)" ([\w.-]+) \S+\/settings\.sh$/;
const OK = /^(mkdir -p '[^']+' && chmod 700 '[^']+'|sync|PS1=.*)$/;
const RAW = /^(poweroff|reboot|exit|command -v bash .*)$/;

export class GuestVm {
  /** Files pushed into the guest, by path. */
  readonly files = new Map<string, Buffer>();
  /** The marked commands the shell ran (pushFile's, mkdir, sync, the scripts …), in order. */
  readonly ran: string[] = [];
  /** The unmarked lines typed (poweroff, reboot, exit, the switch to bash). */
  readonly typed: string[] = [];
  /** The scripts run, by file name, in order. */
  readonly scripts: string[] = [];
  /** Root's password at the next login (none: the live ISO's root has none). */
  password?: string;
  /** Marked commands that fail (exit status 1), say a mkdir or sync the test wants refused. */
  fails?: RegExp;
  /** What the console shows after `reboot`, each text after its delay (ms from the reboot). */
  rebootOutput: [delayMs: number, text: string][] = [[20, '\r\nreboot: Restarting system\r\n\r\ntiny login: ']];
  private guest?: Guest;
  private readonly opts;

  constructor(
    readonly path: string,
    private readonly runs: Record<string, ScriptRun> = {},
  ) {
    const files = this.files;
    const pushing = pushShell(files, []);
    this.opts = {
      path,
      password: undefined as string | undefined,
      shell: (command: string, id: string, write: (text: string) => void) => {
        this.ran.push(command);
        if (pushing(command, id, write)) return;
        const script = SCRIPT.exec(command);
        if (script) return this.runScript(script[2]!, id, write);
        const status = this.fails?.test(command) ? 1 : OK.test(command) ? 0 : 127;
        const error = status === 1 ? 'sh: failed\r\n' : status ? `sh: ${command}: not found\r\n` : '';
        setTimeout(() => write(`${begin(id)}${error}${end(id, status)}`), 1);
      },
      raw: (line: string, write: (text: string) => void) => {
        if (!RAW.test(line)) return false;
        this.typed.push(line);
        if (line === 'reboot') for (const [ms, text] of this.rebootOutput) setTimeout(() => write(text), ms);
        return true;
      },
    };
  }

  private runScript(name: string, id: string, write: (text: string) => void) {
    this.scripts.push(name);
    const run = this.runs[name] ?? {};
    run.does?.();
    const phases = (run.phases ?? []).map(([phase, seconds]) => `::vms-phase ${phase} ${seconds}\r\n`).join('');
    const ending = run.hangs ? '' : end(id, run.status ?? 0);
    setTimeout(() => write(`${begin(id)}${phases}${run.output ?? ''}${ending}`), 1);
  }

  /** The VM starts: its console socket appears (once), and root's password is the one now set. */
  async boot(): Promise<void> {
    this.opts.password = this.password;
    this.guest ??= await startGuest(this.opts);
  }

  /** Resolves once vms has closed every console connection; fails after `ms` with one still open. */
  async allClosed(ms = 1000): Promise<void> {
    for (const until = Date.now() + ms; (this.guest?.connections() ?? 0) > 0;) {
      if (Date.now() > until) throw new Error(`${this.guest!.connections()} console connection(s) left open`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  async stop(): Promise<void> {
    await this.guest?.stop();
  }
}
