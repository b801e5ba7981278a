import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { usageError, VmsError } from '../../errors.js';
import type { Firmware } from '../../libvirt/domain-xml.js';
import type { Host } from '../context.js';

// settings.sh: what the guest scripts are told (guest/README.md lists each variable). Built from the host's own
// choices — the user, their SSH key, timezone, locale, keymap — so a new VM feels like the machine it runs on.

export interface GuestSettings {
  name: string;
  hostname: string;
  user: string;
  passwordHash: string;
  sshKey: string;
  timezone: string;
  locale: string;
  keymap: string;
  disk: string;
  firmware: Firmware;
  cacheRo: string[]; // virtiofs tags
  cacheRw: string;
}

/** Single-quoted for sh: the one character that needs care inside is the quote itself. */
export const shellQuote = (value: string) => `'${value.replaceAll("'", `'\\''`)}'`;

/** Pure: the settings file's text. Values are one line each; anything else is refused rather than mangled. */
export function renderSettings(s: GuestSettings): string {
  const values: Record<string, string> = {
    VMS_NAME: s.name,
    VMS_HOSTNAME: s.hostname,
    VMS_USER: s.user,
    VMS_PASSWORD_HASH: s.passwordHash,
    VMS_SSH_KEY: s.sshKey,
    VMS_TIMEZONE: s.timezone,
    VMS_LOCALE: s.locale,
    VMS_KEYMAP: s.keymap,
    VMS_DISK: s.disk,
    VMS_FIRMWARE: s.firmware,
    VMS_CACHE_RO: s.cacheRo.join(' '),
    VMS_CACHE_RW: s.cacheRw,
  };
  const lines = Object.entries(values).map(([key, value]) => {
    if (/[\n\r\0]/.test(value)) throw usageError(`${key} must be a single line`);
    return `${key}=${shellQuote(value)}`;
  });
  return `# written by vms create; read by guest/install.sh and the profiles\n${lines.join('\n')}\n`;
}

/** Parses a settings.sh that vms wrote (for --resume and apply), back into its variables. */
export function parseSettings(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^(VMS_[A-Z_]+)='(.*)'$/.exec(line);
    if (m) out[m[1]!] = m[2]!.replaceAll(`'\\''`, "'");
  }
  return out;
}

const USER_RE = /^[a-z_][a-z0-9_-]{0,31}$/;

export function validateUser(user: string): string {
  if (!USER_RE.test(user) || user === 'root') {
    const hint = 'use a lowercase Linux user name other than root, for example alice';
    throw new VmsError('usage', `invalid user name '${user}'`, hint, undefined, 'user.invalid');
  }
  return user;
}

export interface HostFacts {
  user: string;
  home: string;
  timezone: string;
  locale: string;
  keymap: string;
}

/**
 * The invoking person (SUDO_USER under sudo, else USER, else who `host` is) and the host's timezone, locale and keymap,
 * with safe fallbacks.
 */
export function hostFacts(host: Pick<Host, 'env' | 'user' | 'home'>, root = '/'): HostFacts {
  const { env } = host;
  const sudoUser = env.SUDO_USER && env.SUDO_USER !== 'root' ? env.SUDO_USER : undefined;
  const self = sudoUser ?? env.USER ?? host.user;
  const home = sudoUser ? (passwdHome(sudoUser, root) ?? `/home/${sudoUser}`) : (env.HOME ?? host.home);
  let timezone = 'UTC';
  try {
    timezone = readlinkSync(join(root, 'etc/localtime')).split('zoneinfo/')[1] ?? 'UTC';
  } catch {
    // no /etc/localtime: UTC
  }
  const lang = env.LANG ?? '';
  const locale = /^[a-z]{2,3}_[A-Z]{2}\.UTF-8$/.test(lang) ? lang : 'en_US.UTF-8';
  let keymap = 'us';
  try {
    keymap = /^KEYMAP=["']?([\w-]+)/m.exec(readFileSync(join(root, 'etc/vconsole.conf'), 'utf8'))?.[1] ?? 'us';
  } catch {
    // no vconsole.conf (Debian, Fedora): us
  }
  // root runs vms in containers and CI; the guest still gets an ordinary user.
  return { user: USER_RE.test(self) && self !== 'root' ? self : 'arch', home, timezone, locale, keymap };
}

function passwdHome(user: string, root: string): string | undefined {
  try {
    const line = readFileSync(join(root, 'etc/passwd'), 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`${user}:`));
    return line?.split(':')[5];
  } catch {
    return undefined;
  }
}

/**
 * The user's public SSH key (given, or the first of ~/.ssh/id_{ed25519,ecdsa,rsa}.pub), or '' when there is none. A
 * relative `given` is taken from the caller's directory `cwd`.
 */
export function sshPublicKey(home: string, given?: string, cwd = '/'): string {
  const candidates = given
    ? [given]
    : ['id_ed25519.pub', 'id_ecdsa.pub', 'id_rsa.pub'].map((f) => join(home, '.ssh', f));
  const found = candidates.find((p) => existsSync(resolve(cwd, p)));
  if (!found) {
    const hint = 'give a public key file (.pub)';
    if (given) throw new VmsError('usage', `SSH key not found: ${given}`, hint, undefined, 'sshKey.notFound');
    return '';
  }
  const key = readFileSync(resolve(cwd, found), 'utf8').trim().split('\n')[0] ?? '';
  if (!/^(ssh-|ecdsa-|sk-)/.test(key))
    throw usageError(`${found} does not look like an SSH public key`, 'pass the .pub file');
  return key;
}
