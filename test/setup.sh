#!/bin/sh
# Sets this machine up for the integration tests (Debian 12, as root; CI runs it from .ci/run):
#   1. libvirt + QEMU + tools from Debian packages, daemons started by hand when systemd is not PID 1 (setup/libvirt.sh)
#   2. the tiny test guest (kernel + busybox initramfs + ISOs) built from Debian packages, cached between runs
#   3. the directories the tests use, reachable by the qemu user
set -eu
cd "$(dirname "$0")"
CACHE=${VMS_TEST_CACHE:-/var/cache/vms-test}
EXTRAS=1 sh setup/libvirt.sh
if [ ! -f "$CACHE/tiny/tiny-hybrid.iso" ]; then
  sh setup/tiny-guest.sh "$CACHE/tiny" --iso
fi
mkdir -p /var/lib/vms-test && chmod 755 /var/lib/vms-test
echo "test setup done: guest in $CACHE/tiny"
