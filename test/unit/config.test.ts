import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configFilePath, resolveConfig, type Config } from '../../src/config.js';
import { VmsError } from '../../src/errors.js';

const G = 2 ** 30;
const FILE = '/home/u/.config/vms/config.json';
const file = (values: unknown) => ({ path: FILE, text: JSON.stringify(values) });

/** value and source of every setting, for whole-config comparisons. */
const flat = (c: Config) => Object.fromEntries(Object.entries(c).map(([k, s]) => [k, [s.value, s.source]]));

function assertUsage(fn: () => unknown, message: RegExp) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof VmsError, String(err));
    assert.equal(err.code, 'usage');
    assert.match(err.message, message);
    return true;
  });
}

test('defaults when nothing is set', () => {
  assert.deepEqual(flat(resolveConfig({ env: {} })), {
    uri: ['qemu:///system', 'default'],
    memory: [2 * G, 'default'],
    cpus: [2, 'default'],
    disk: [20 * G, 'default'],
    imagesDir: ['/var/lib/libvirt/images', 'default'],
    isoDir: ['/var/lib/libvirt/iso', 'default'],
    mirror: ['https://geo.mirror.pkgbuild.com/iso/latest/', 'default'],
    stateDir: ['/var/lib/vms', 'default'],
    cacheDir: ['/var/cache/vms', 'default'],
    guestDir: ['', 'default'],
    profilePath: [[], 'default'],
    bootTimeout: [600, 'default'],
  });
});

test('uri: flag > LIBVIRT_DEFAULT_URI > default', () => {
  const cases: [string | undefined, string | undefined, [string, string]][] = [
    ['qemu+ssh://h/system', 'qemu:///session', ['qemu+ssh://h/system', 'flag']],
    [undefined, 'qemu:///session', ['qemu:///session', 'env LIBVIRT_DEFAULT_URI']],
    ['', 'qemu:///session', ['qemu:///session', 'env LIBVIRT_DEFAULT_URI']],
    [undefined, '', ['qemu:///system', 'default']],
    [undefined, undefined, ['qemu:///system', 'default']],
  ];
  for (const [uriFlag, envUri, [value, source]] of cases) {
    const env = envUri === undefined ? {} : { LIBVIRT_DEFAULT_URI: envUri };
    const { uri } = resolveConfig({ env, uriFlag, file: file({}) });
    assert.deepEqual([uri.value, uri.source], [value, source], `flag=${uriFlag} env=${envUri}`);
  }
});

test('other settings: env > file > default, each with its source', () => {
  const env = { VMS_MEMORY: '8G', VMS_IMAGES_DIR: '/srv/images/', VMS_CPUS: '' /* empty = unset */ };
  const c = resolveConfig({
    env,
    file: file({
      memory: '1G',
      cpus: 4,
      disk: '40G',
      imagesDir: '/x',
      stateDir: '/st',
      profilePath: ['/a', '/b'],
      bootTimeout: 60,
    }),
  });
  assert.deepEqual(flat(c), {
    uri: ['qemu:///system', 'default'],
    memory: [8 * G, 'env VMS_MEMORY'],
    cpus: [4, `file ${FILE}`],
    disk: [40 * G, `file ${FILE}`],
    imagesDir: ['/srv/images', 'env VMS_IMAGES_DIR'], // trailing slash dropped
    isoDir: ['/var/lib/libvirt/iso', 'default'],
    mirror: ['https://geo.mirror.pkgbuild.com/iso/latest/', 'default'],
    stateDir: ['/st', `file ${FILE}`],
    cacheDir: ['/var/cache/vms', 'default'],
    guestDir: ['', 'default'],
    profilePath: [['/a', '/b'], `file ${FILE}`], // a list in JSON, colon-separated in the environment
    bootTimeout: [60, `file ${FILE}`],
  });
});

test('every env variable is read', () => {
  const env = {
    VMS_MEMORY: '3G',
    VMS_CPUS: '3',
    VMS_DISK: '30G',
    VMS_IMAGES_DIR: '/i',
    VMS_ISO_DIR: '/o',
    VMS_STATE_DIR: '/s',
    VMS_CACHE_DIR: '/c',
    VMS_GUEST_DIR: '/g/',
    VMS_PROFILE_PATH: '/p1::/p2/',
    VMS_BOOT_TIMEOUT: '90',
    VMS_MIRROR: 'http://127.0.0.1:8080/arch/iso',
  };
  const c = resolveConfig({ env });
  assert.deepEqual(flat(c), {
    uri: ['qemu:///system', 'default'],
    memory: [3 * G, 'env VMS_MEMORY'],
    cpus: [3, 'env VMS_CPUS'],
    disk: [30 * G, 'env VMS_DISK'],
    imagesDir: ['/i', 'env VMS_IMAGES_DIR'],
    isoDir: ['/o', 'env VMS_ISO_DIR'],
    mirror: ['http://127.0.0.1:8080/arch/iso/', 'env VMS_MIRROR'], // a "/" added: the directory
    stateDir: ['/s', 'env VMS_STATE_DIR'],
    cacheDir: ['/c', 'env VMS_CACHE_DIR'],
    guestDir: ['/g', 'env VMS_GUEST_DIR'],
    profilePath: [['/p1', '/p2'], 'env VMS_PROFILE_PATH'],
    bootTimeout: [90, 'env VMS_BOOT_TIMEOUT'],
  });
});

test('a relative profile directory or a bad boot timeout is a usage error naming its source', () => {
  assertUsage(
    () => resolveConfig({ env: { VMS_PROFILE_PATH: '/ok:rel' } }),
    /^directory 'rel' is not an absolute path \(from env VMS_PROFILE_PATH\)$/,
  );
  for (const t of ['0', '-5', '1.5', 'soon'])
    assertUsage(() => resolveConfig({ env: { VMS_BOOT_TIMEOUT: t } }), /^invalid timeout/);
});

test('a config file that is not a JSON object is a usage error naming the file', () => {
  for (const text of ['{', '', 'memory = 4G', '[]', 'null', '42', '"4G"']) {
    assertUsage(
      () => resolveConfig({ env: {}, file: { path: FILE, text } }),
      new RegExp(`^config file ${FILE} is not a JSON object$`),
    );
  }
});

test('an unknown key in the config file is a usage error naming the file and the key', () => {
  assertUsage(
    () => resolveConfig({ env: {}, file: file({ memory: '4G', ram: '4G' }) }),
    new RegExp(`^config file ${FILE}: unknown key 'ram'$`),
  );
  assertUsage(() => resolveConfig({ env: {}, file: file({ uri: 'qemu:///session' }) }), /unknown key 'uri'/);
});

test('a bad value in the config file is a usage error naming the file', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ memory: 'lots' }, /^invalid memory 'lots'/],
    [{ memory: 4 }, /^invalid memory '4'/], // a bare number has no unit
    [{ memory: '1K' }, /^memory '1K' is out of range/],
    [{ cpus: 0 }, /^invalid CPU count '0'/],
    [{ cpus: '2.5' }, /^invalid CPU count '2.5'/],
    [{ cpus: 513 }, /^invalid CPU count '513'/],
    [{ disk: '40X' }, /^invalid disk size '40X'/],
    [{ isoDir: 'relative/dir' }, /^directory 'relative\/dir' is not an absolute path/],
    [{ mirror: 'ftp://mirror/iso/' }, /^invalid mirror URL 'ftp:\/\/mirror\/iso\/'/],
    [{ mirror: 'mirror.example.org' }, /^invalid mirror URL/],
  ];
  for (const [values, message] of cases) {
    assert.throws(
      () => resolveConfig({ env: {}, file: file(values) }),
      (err: unknown) => {
        assert.ok(err instanceof VmsError);
        assert.equal(err.code, 'usage');
        assert.match(err.message, message);
        assert.ok(err.message.endsWith(`(from file ${FILE})`), err.message);
        return true;
      },
      JSON.stringify(values),
    );
  }
});

test('a bad env value is a usage error naming the variable, and wins over a good file value', () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ VMS_MEMORY: '4' }, /^invalid memory '4'.*\(from env VMS_MEMORY\)$/],
    [{ VMS_CPUS: 'many' }, /^invalid CPU count 'many'.*\(from env VMS_CPUS\)$/],
    [{ VMS_DISK: '1P' }, /^invalid disk size '1P'.*\(from env VMS_DISK\)$/],
    [{ VMS_STATE_DIR: 'state' }, /^directory 'state' is not an absolute path \(from env VMS_STATE_DIR\)$/],
  ];
  for (const [env, message] of cases) {
    assertUsage(
      () => resolveConfig({ env, file: file({ memory: '4G', cpus: 2, disk: '10G', stateDir: '/s' }) }),
      message,
    );
  }
});

test('the hint of a value error survives the re-wrapping', () => {
  assert.throws(
    () => resolveConfig({ env: { VMS_CPUS: '0' } }),
    (err: unknown) => {
      assert.ok(err instanceof VmsError);
      assert.match(err.hint ?? '', /whole number from 1 to 512/);
      return true;
    },
  );
});

test('configFilePath: VMS_CONFIG > XDG_CONFIG_HOME > HOME/.config', () => {
  const cases: [NodeJS.ProcessEnv, string][] = [
    [{ VMS_CONFIG: '/etc/vms.json', XDG_CONFIG_HOME: '/xdg', HOME: '/home/u' }, '/etc/vms.json'],
    [{ XDG_CONFIG_HOME: '/xdg', HOME: '/home/u' }, '/xdg/vms/config.json'],
    [{ XDG_CONFIG_HOME: '', HOME: '/home/u' }, '/home/u/.config/vms/config.json'],
    [{ HOME: '/home/u' }, '/home/u/.config/vms/config.json'],
  ];
  for (const [env, path] of cases) assert.equal(configFilePath(env), path, JSON.stringify(env));
});
