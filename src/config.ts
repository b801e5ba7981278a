import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { VmsError, usageError } from './errors.js';
import { DISK_RANGE, MEMORY_RANGE, parseSize } from './size.js';

// Effective settings and where each came from: a command-line flag > an environment variable > the config file
// > the built-in default. `vms config` shows the result, so a surprising value can always be traced.

export type Source = 'default' | 'flag' | `env ${string}` | `file ${string}`;

export interface Setting<T> {
  value: T;
  source: Source;
}

export interface Config {
  uri: Setting<string>;
  memory: Setting<number>; // bytes
  cpus: Setting<number>;
  disk: Setting<number>; // bytes
  imagesDir: Setting<string>;
  isoDir: Setting<string>;
  mirror: Setting<string>; // where `vms iso fetch` downloads the Arch ISO: a mirror's iso/latest/ directory
  stateDir: Setting<string>; // per-VM serial socket, console transcript, NVRAM
  cacheDir: Setting<string>; // kernels read out of ISOs, the shared pacman package cache
  guestDir: Setting<string>; // the install scripts pushed into the live ISO; '' = the ones built into vms
  profilePath: Setting<string[]>; // the user's profile directories, searched before the built-in profiles
  bootTimeout: Setting<number>; // seconds a guest may take to show its login prompt
}

type Key = Exclude<keyof Config, 'uri'>;

const DEFAULTS: Record<Key, string> = {
  memory: '2G',
  cpus: '2',
  disk: '20G',
  imagesDir: '/var/lib/libvirt/images',
  isoDir: '/var/lib/libvirt/iso',
  mirror: 'https://geo.mirror.pkgbuild.com/iso/latest/',
  stateDir: '/var/lib/vms',
  cacheDir: '/var/cache/vms',
  guestDir: '',
  profilePath: '',
  bootTimeout: '600',
};

export const ENV_NAMES: Record<Key, string> = {
  memory: 'VMS_MEMORY',
  cpus: 'VMS_CPUS',
  disk: 'VMS_DISK',
  imagesDir: 'VMS_IMAGES_DIR',
  isoDir: 'VMS_ISO_DIR',
  mirror: 'VMS_MIRROR',
  stateDir: 'VMS_STATE_DIR',
  cacheDir: 'VMS_CACHE_DIR',
  guestDir: 'VMS_GUEST_DIR',
  profilePath: 'VMS_PROFILE_PATH',
  bootTimeout: 'VMS_BOOT_TIMEOUT',
};

export function parseCpus(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n < 1 || n > 512) {
    throw usageError(`invalid CPU count '${text}'`, 'use a whole number from 1 to 512, for example --cpus 2');
  }
  return n;
}

function parseDir(text: string): string {
  if (!text.startsWith('/')) throw usageError(`directory '${text}' is not an absolute path`);
  return text.replace(/\/+$/, '') || '/';
}

/** An http(s) URL of the directory that holds the ISO and its sha256sums.txt; always ends in "/". */
export function parseMirror(text: string): string {
  const url = URL.canParse(text.trim()) ? new URL(text.trim()) : undefined;
  if (!url || !['http:', 'https:'].includes(url.protocol) || url.search || url.hash) {
    throw usageError(
      `invalid mirror URL '${text}'`,
      `give the http(s) address of a mirror's ISO directory, for example --mirror ${DEFAULTS.mirror}`,
    );
  }
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url.href;
}

function parseSeconds(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n < 1)
    throw usageError(`invalid timeout '${text}'`, 'use a whole number of seconds, for example 600');
  return n;
}

const PARSERS: Record<Key, (text: string) => number | string | string[]> = {
  memory: (t) => parseSize(t, MEMORY_RANGE),
  cpus: parseCpus,
  disk: (t) => parseSize(t, DISK_RANGE),
  imagesDir: parseDir,
  isoDir: parseDir,
  mirror: parseMirror,
  stateDir: parseDir,
  cacheDir: parseDir,
  guestDir: (t) => (t === '' ? '' : parseDir(t)),
  profilePath: (t) => t.split(':').filter(Boolean).map(parseDir),
  bootTimeout: parseSeconds,
};

export function configFilePath(env: NodeJS.ProcessEnv): string {
  if (env.VMS_CONFIG) return env.VMS_CONFIG;
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'vms', 'config.json');
}

export interface ConfigInputs {
  env: NodeJS.ProcessEnv;
  uriFlag?: string;
  file?: { path: string; text: string };
}

/** A list in JSON (profilePath) reads like the colon-separated environment variable. */
const fileText = (value: unknown) => (Array.isArray(value) ? value.join(':') : String(value));

/** Pure: computes the effective config from its inputs. */
export function resolveConfig({ env, uriFlag, file }: ConfigInputs): Config {
  let fileValues: Record<string, unknown> = {};
  if (file) {
    try {
      fileValues = JSON.parse(file.text) as Record<string, unknown>;
      if (typeof fileValues !== 'object' || fileValues === null || Array.isArray(fileValues)) throw new Error();
    } catch {
      throw usageError(
        `config file ${file.path} is not a JSON object`,
        'fix or remove it; `vms config` shows the keys',
      );
    }
    const unknown = Object.keys(fileValues).filter((k) => !(k in DEFAULTS));
    if (unknown.length) {
      throw usageError(
        `config file ${file.path}: unknown key '${unknown[0]}'`,
        `known keys: ${Object.keys(DEFAULTS).join(', ')}`,
      );
    }
  }

  const setting = (key: Key): Setting<never> => {
    const envName = ENV_NAMES[key];
    const [text, source]: [string, Source] =
      env[envName] !== undefined && env[envName] !== ''
        ? [env[envName]!, `env ${envName}`]
        : fileValues[key] !== undefined
          ? [fileText(fileValues[key]), `file ${file!.path}`]
          : [DEFAULTS[key], 'default'];
    try {
      return { value: PARSERS[key](text) as never, source };
    } catch (err) {
      if (err instanceof VmsError && source !== 'default') {
        throw new VmsError(err.code, `${err.message} (from ${source})`, err.hint);
      }
      throw err;
    }
  };

  const uri: Setting<string> = uriFlag
    ? { value: uriFlag, source: 'flag' }
    : env.LIBVIRT_DEFAULT_URI
      ? { value: env.LIBVIRT_DEFAULT_URI, source: 'env LIBVIRT_DEFAULT_URI' }
      : { value: 'qemu:///system', source: 'default' };

  return {
    uri,
    memory: setting('memory'),
    cpus: setting('cpus'),
    disk: setting('disk'),
    imagesDir: setting('imagesDir'),
    isoDir: setting('isoDir'),
    mirror: setting('mirror'),
    stateDir: setting('stateDir'),
    cacheDir: setting('cacheDir'),
    guestDir: setting('guestDir'),
    profilePath: setting('profilePath'),
    bootTimeout: setting('bootTimeout'),
  };
}

/** Reads the config file (when there is one) and resolves. */
export function loadConfig(env: NodeJS.ProcessEnv, uriFlag?: string): Config {
  const path = configFilePath(env);
  let text: string | undefined;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw usageError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  return resolveConfig({ env, uriFlag, file: text === undefined ? undefined : { path, text } });
}
