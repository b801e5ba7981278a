import type { Config } from '../config.js';
import { QemuImg } from '../libvirt/qemu-img.js';
import { Virsh } from '../libvirt/virsh.js';
import type { Runner } from '../runner.js';
import { silentProgress, type Progress } from './progress.js';

/** Everything a core operation needs from the outside world; no printing, prompting or exiting in the core. */
export interface Context {
  config: Config;
  runner: Runner;
  virsh: Virsh;
  qemuImg: QemuImg;
  progress: Progress;
  signal?: AbortSignal;
}

export function createContext(opts: { config: Config; runner: Runner; progress?: Progress; signal?: AbortSignal }): Context {
  return {
    config: opts.config,
    runner: opts.runner,
    virsh: new Virsh(opts.runner, opts.config.uri.value, opts.signal),
    qemuImg: new QemuImg(opts.runner, opts.signal),
    progress: opts.progress ?? silentProgress,
    signal: opts.signal,
  };
}
