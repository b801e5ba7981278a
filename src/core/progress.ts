// How the core reports progress without printing: the CLI supplies a spinner, plain lines or nothing (--json);
// a library user or the HTTP API can supply their own.
export interface Progress {
  /** Runs one named step of a multi-step command. */
  step<T>(title: string, fn: () => Promise<T>): Promise<T>;
  /** A remark worth telling the user (a fallback taken, something kept). */
  note(message: string): void;
  /** What a guest prints on its console while vms drives it (shown with -v). */
  transcript?(text: string): void;
  /** How far a download inside the current step has got: called a few times a second; the renderer picks how often to show it. */
  transfer?(status: TransferStatus): void;
}

export interface TransferStatus {
  /** Bytes there so far (a resumed download counts what it already had). */
  done: number;
  total?: number;
  /** Bytes per second, lately. */
  rate?: number;
  /** Seconds still to go at that rate. */
  eta?: number;
  /** The same as one short line, e.g. "512M / 1.2G (42%)  10.5M/s  ETA 1m10s". */
  text: string;
  /** The transfer's last report. */
  final: boolean;
}

export const silentProgress: Progress = {
  step: (_title, fn) => fn(),
  note: () => {},
};
