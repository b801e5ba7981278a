#!/bin/sh
# archiso-like.sh OUTDIR
# Builds OUTDIR/archlinux-test.iso, a stand-in for the Arch ISO (whose mirrors the tests cannot reach), from Debian
# packages only (apt-get download + dpkg-deb -x, nothing installed on the host but xorriso):
#   - ISO 9660 + Rock Ridge, label ARCH_TEST, UUID (volume date) 2026-11-01-12-00-00-00, with the kernel and initramfs
#     where archiso keeps them: arch/boot/x86_64/vmlinuz-linux and initramfs-linux.img. Not bootable by itself:
#     vms boots the two files directly (console=ttyS0,115200 archisobasedir=arch archisosearchuuid=...).
#   - initramfs /init: with root=DEV on the kernel command line it boots that installed disk (mount, switch_root);
#     without, the live system: busybox init, "archiso login:" on ttyS0, root with an empty password, acpid.
#   - what the test installer (test/fixtures/guest/install.sh) needs: busybox (fdisk, mke2fs, base64, sha256sum)
#     and extlinux (+ libc) with syslinux's mbr.bin.
set -eu
OUT=$(realpath -m "${1:?usage: $0 OUTDIR}")
mkdir -p "$OUT"; W=$(mktemp -d); trap 'rm -rf "$W"' EXIT; cd "$W"

# 1. fetch and unpack the debs; linux-image-amd64 is a metapackage, take the kernel it points to
KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
KVER=${KPKG#linux-image-}
apt-get download -q "$KPKG" busybox-static extlinux syslinux-common libc6 2>&1 | grep -v unsandboxed || true
for d in *.deb; do dpkg-deb -x "$d" x; done
BB=$W/x/bin/busybox
if [ ! -x "$BB" ] || [ ! -x x/usr/bin/extlinux ]; then echo "archiso-like.sh: download failed" >&2; exit 1; fi

# 2. the root file system: busybox applets, extlinux with the libc it links to, mbr.bin
R=$W/root
mkdir -p "$R/bin" "$R/etc/acpi" "$R/proc" "$R/sys" "$R/dev" "$R/run" "$R/tmp" "$R/root" "$R/mnt" "$R/lib64" \
  "$R/lib/x86_64-linux-gnu" "$R/usr/lib/syslinux/mbr" "$R/var/log" "$R/var/run"   # acpid dies without /var/log
cp "$BB" x/usr/bin/extlinux "$R/bin/"
for a in $($BB --list) mkfs.ext2; do [ -e "$R/bin/$a" ] || ln -s busybox "$R/bin/$a"; done
ln -s bin "$R/sbin"; ln -s ../bin "$R/usr/bin"; ln -s ../bin "$R/usr/sbin"
cp x/lib/x86_64-linux-gnu/libc.so.6 x/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$R/lib/x86_64-linux-gnu/"
ln -s ../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 "$R/lib64/"
cp x/usr/lib/syslinux/mbr/mbr.bin "$R/usr/lib/syslinux/mbr/"

# 3. kernel modules: Debian builds virtio, AHCI (q35's cdrom), sr, isofs and ext4 (which mounts ext2) as modules.
#    modules.dep lists each module's whole dependency chain; crc32c is loaded by name at mount time, so named here.
#    virtiofs: the package caches vms shares into an install.
MODS="virtio_pci virtio_blk virtio_scsi virtio_rng virtiofs ahci ata_piix sr_mod sd_mod isofs ext4 crc32c_generic evdev button"
M=x/lib/modules/$KVER
$BB depmod -b x "$KVER"
for m in $MODS; do   # "_" in a module's name may be "-" in its file's: tr makes it "." (any character)
  grep "/$(echo "$m" | tr _ .)\.ko:" "$M/modules.dep" || { echo "archiso-like.sh: no module $m" >&2; exit 1; }
done > "$W/deps"
tr -d : < "$W/deps" | tr ' ' '\n' | sort -u |
  while read -r f; do
    [ -n "$f" ] || continue
    mkdir -p "$R/lib/modules/$KVER/${f%/*}"; cp "$M/$f" "$R/lib/modules/$KVER/$f"
  done
cp "$M/modules.order" "$M/modules.builtin" "$R/lib/modules/$KVER/"
$BB depmod -b "$R" "$KVER"

# 4. /init: PID 1 of both the live system and (the same initramfs, copied to the disk) the installed one
cat > "$R/init" <<EOF
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/pts; mount -t devpts devpts /dev/pts
exec </dev/console >/dev/console 2>&1   # the cpio has no /dev/console: the kernel could not open it for us
for m in $MODS; do modprobe -q \$m; done
root=
for a in \$(cat /proc/cmdline); do case \$a in root=*) root=\${a#root=} ;; esac; done
[ -n "\$root" ] || exec /sbin/init      # the live system: busybox init on the initramfs itself
i=0; while [ ! -b "\$root" ] && [ \$i -lt 100 ]; do usleep 100000; i=\$((i + 1)); done   # virtio probes late
mkdir -p /newroot
mount -o rw "\$root" /newroot || { echo "/init: cannot mount root=\$root, here is a shell"; exec sh; }
for d in dev proc sys; do mount --move /\$d /newroot/\$d; done
exec switch_root /newroot /sbin/init
EOF
chmod 755 "$R/init"

# 5. config of the live system; the installer copies it to the disk and changes hostname and passwords there
echo 'root::0:0:root:/root:/bin/sh' > "$R/etc/passwd"        # empty password, like archiso's root
echo 'root:x:0:' > "$R/etc/group"
echo archiso > "$R/etc/hostname"
echo 'PWRF poweroff' > "$R/etc/acpid.conf"                   # ACPI power button (virsh shutdown) -> /etc/acpi/poweroff
printf '#!/bin/sh\nexec /bin/poweroff\n' > "$R/etc/acpi/poweroff"
printf '#!/bin/sh\nhostname -F /etc/hostname\nacpid\n' > "$R/etc/rcS"   # /init did the mounts and modules
chmod 755 "$R/etc/acpi/poweroff" "$R/etc/rcS"
# umount -a -r leaves an installed root read-only (clean) when it cannot be unmounted
cat > "$R/etc/inittab" <<'EOF'
::sysinit:/etc/rcS
ttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/sync
::shutdown:/bin/umount -a -r
EOF

# 6. the ISO, laid out like archiso's (mkarchiso sets the volume date that blkid reports as the UUID the same way)
I=$W/iso; mkdir -p "$I/arch/boot/x86_64"
cp x/boot/vmlinuz-"$KVER" "$I/arch/boot/x86_64/vmlinuz-linux"
(cd "$R" && find . | $BB cpio -o -H newc 2>/dev/null | gzip -9) > "$I/arch/boot/x86_64/initramfs-linux.img"
xorriso -as mkisofs -quiet -R -V ARCH_TEST --modification-date=2026110112000000 -o "$OUT/archlinux-test.iso.part" "$I"
mv "$OUT/archlinux-test.iso.part" "$OUT/archlinux-test.iso"
ls -la "$OUT"
