#!/bin/sh
# daemons.sh - starts virtlogd and libvirtd by hand when they are not running (no systemd here), with /dev/kvm hidden
# from libvirtd. Idempotent. Called by libvirt.sh; the doctor test calls it to start libvirtd again after stopping it.
set -eu
# Daemons, started by hand. virtlogd is mandatory (without it: "Failed to connect socket to
#    '/run/libvirt/virtlogd-sock'"); virtlockd is not (no lock_manager configured).
running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
running /run/virtlogd.pid || virtlogd -d
if ! running /run/libvirtd.pid; then
  # The tests never start libvirt's NAT network: an autostart (the package's, or the one `vms bootstrap` sets) is
  # dropped before libvirtd starts, also when the doctor test starts it again.
  rm -f /etc/libvirt/qemu/networks/autostart/default.xml
  if [ -e /dev/kvm ]; then
    # /dev/kvm on this host is kvm_pvm (nested PVM): stock kernels hang in the decompressor.
    # Hide it from libvirtd (+ its qemu children) only: in a private mount namespace, bind an empty
    # READ-ONLY file over /dev/kvm. Then capabilities offer only <domain type='qemu'> (TCG),
    # virt-install picks TCG by itself, and type='kvm' fails fast. Read-only matters: libvirt's
    # access(W_OK) check must agree with QEMU's probe, otherwise libvirt re-probes QEMU on every
    # API call (virsh define took 20-45 s).
    install -m 0600 /dev/null /run/libvirt-no-kvm
    unshare -m --propagation slave sh -c \
      'mount --bind /run/libvirt-no-kvm /dev/kvm && mount -o remount,bind,ro /dev/kvm && exec libvirtd -d'
  else
    libvirtd -d
  fi
fi
for _ in $(seq 50); do virsh -c qemu:///system version >/dev/null 2>&1 && break; sleep 0.2; done
virsh -c qemu:///system capabilities | grep -o "domain type='[a-z]*'" | sort -u
echo "virtlogd pid $(cat /run/virtlogd.pid), libvirtd pid $(cat /run/libvirtd.pid); logs: /var/log/libvirt/"
# Stop: kill "$(cat /run/libvirtd.pid)" "$(cat /run/virtlogd.pid)"
