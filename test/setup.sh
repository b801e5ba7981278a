#!/bin/sh
# Sets this machine up for the integration tests (Debian 12, as root; CI runs it from .ci/run):
#   1. the libvirt daemons, started by hand with /dev/kvm hidden (this machine's KVM is broken; setup/libvirt.sh), then
#      `vms bootstrap --yes --no-network` for real: the packages vms needs, the group, the directories, the network
#      (defined, not started); bootstrap finds the daemons running and leaves them alone
#   2. the tiny test guest (kernel + busybox initramfs + ISOs) and an archiso-like ISO, built from Debian packages,
#      cached between runs
#   3. the directories the tests use, reachable by the qemu user
set -eu
cd "$(dirname "$0")"
CACHE=${VMS_TEST_CACHE:-/var/cache/vms-test}
EXTRAS=1 sh setup/libvirt.sh
../vms bootstrap --yes --no-network
# shellcheck for the guest scripts; bsdtar, the other tool vms can read an ISO with
apt-get install -y -q --no-install-recommends shellcheck libarchive-tools
if [ ! -f "$CACHE/tiny/tiny-hybrid.iso" ]; then
  sh setup/tiny-guest.sh "$CACHE/tiny" --iso
fi
if [ ! -f "$CACHE/archiso/archlinux-test.iso" ]; then
  sh setup/archiso-like.sh "$CACHE/archiso"   # looks like the Arch ISO to vms; its live system logs in like archiso
fi
mkdir -p /var/lib/vms-test && chmod 755 /var/lib/vms-test
echo "test setup done: guest in $CACHE/tiny"
