// How the core reports progress without printing: the CLI supplies a spinner, plain lines or nothing (--json);
// a library user or the HTTP API can supply their own.
export interface Progress {
  /** Runs one named step of a multi-step command. */
  step<T>(title: string, fn: () => Promise<T>): Promise<T>;
  /** A remark worth telling the user (a fallback taken, something kept). */
  note(message: string): void;
  /** What a guest prints on its console while vms drives it (shown with -v). */
  transcript?(text: string): void;
}

export const silentProgress: Progress = {
  step: (_title, fn) => fn(),
  note: () => {},
};
