#!/bin/bash
# Installs Arch Linux on VMS_DISK from the live ISO, as vms asks (guest/README.md):
#   bash /root/vms/install.sh /root/vms/settings.sh
# Every phase starts with a `::vms-phase NAME TIMEOUT` line, which vms times. Everything on VMS_DISK is erased.
set -Eeuo pipefail

settings=${1:?usage: install.sh SETTINGS}
# shellcheck source=/dev/null
source "$settings"

# Where things are on the live system; tests point these elsewhere.
target=${VMS_TARGET:-/mnt}
pacman_conf=${VMS_PACMAN_CONF:-/etc/pacman.conf}
cache_mnt=${VMS_CACHE_MNT:-/run/vms-cache}
here=$(dirname "$0")

# Both consoles on the kernel command line: ttyS0 last, so it is /dev/console and vms sees boot messages and a login.
cmdline_consoles='console=tty0 console=ttyS0,115200'
current_phase=start

phase() {
  current_phase=$1
  echo "::vms-phase $1 $2"
}

die() {
  echo "install.sh: $*" >&2
  exit 1
}

trap 'echo "install.sh: \`$BASH_COMMAND\` failed with status $?" >&2' ERR
# On failure leave nothing mounted; vms powers the VM off either way.
trap 'status=$?; if ((status)); then echo "install.sh: failed in phase $current_phase" >&2; umount -R "$target" 2>/dev/null || true; fi' EXIT

# /dev/vda → /dev/vda1, /dev/nvme0n1 → /dev/nvme0n1p1
partition() {
  if [[ $VMS_DISK == *[0-9] ]]; then echo "${VMS_DISK}p$1"; else echo "$VMS_DISK$1"; fi
}

# Writes stdin to a file in the target, making its directory.
put() {
  mkdir -p "$(dirname "$target$1")"
  cat > "$target$1"
}

phase check 30
for var in VMS_NAME VMS_HOSTNAME VMS_USER VMS_PASSWORD_HASH VMS_TIMEZONE VMS_LOCALE VMS_KEYMAP VMS_DISK VMS_FIRMWARE; do
  [[ -n ${!var:-} ]] || die "$var is not set in $settings"
done
[[ $VMS_FIRMWARE == bios || $VMS_FIRMWARE == efi ]] || die "VMS_FIRMWARE must be bios or efi, not '$VMS_FIRMWARE'"
[[ $(lsblk -dno TYPE "$VMS_DISK") == disk ]] || die "$VMS_DISK is not a whole disk"
for file in vms-identity vms-identity.service; do
  [[ -f $here/$file ]] || die "$here/$file is missing"
done

phase partition 120
root_part=$(partition 2)
wipefs -a "$VMS_DISK"
sgdisk --zap-all "$VMS_DISK"
if [[ $VMS_FIRMWARE == efi ]]; then
  sgdisk -n 1:0:+512M -t 1:ef00 -c 1:ESP -n 2:0:0 -t 2:8304 -c 2:root "$VMS_DISK"
else
  # GRUB embeds its core image in this partition on a GPT disk.
  sgdisk -n 1:0:+1M -t 1:ef02 -c 1:bios -n 2:0:0 -t 2:8304 -c 2:root "$VMS_DISK"
fi
partprobe "$VMS_DISK"
udevadm settle
mkfs.ext4 -F -q -L root "$root_part"
if [[ $VMS_FIRMWARE == efi ]]; then mkfs.fat -F 32 -n ESP "$(partition 1)"; fi

phase mount 60
mount "$root_part" "$target"
if [[ $VMS_FIRMWARE == efi ]]; then
  # The ESP is /boot, where systemd-boot finds the kernels; not world-readable, as bootctl wants for its random seed.
  mkdir -p "$target/boot"
  mount -o fmask=0077,dmask=0077 "$(partition 1)" "$target/boot"
fi

phase cache 60
# The host's package caches as pacman CacheDirs: the writable one first (downloads go to the first writable one),
# the target's own cache last, so that downloads never fill the live system's small overlay.
cache_mounts=()
for tag in ${VMS_CACHE_RW:-}; do
  mkdir -p "$cache_mnt/$tag"
  mount -t virtiofs "$tag" "$cache_mnt/$tag"
  cache_mounts+=("$cache_mnt/$tag")
done
for tag in ${VMS_CACHE_RO:-}; do
  mkdir -p "$cache_mnt/$tag"
  mount -t virtiofs -o ro "$tag" "$cache_mnt/$tag"
  cache_mounts+=("$cache_mnt/$tag")
done
pacstrap_opts=()
if ((${#cache_mounts[@]})); then
  mkdir -p "$target/var/cache/pacman/pkg"
  lines=$(printf 'CacheDir = %s/\n' "${cache_mounts[@]}" "$target/var/cache/pacman/pkg")
  awk -v lines="$lines" '{ print } /^\[options\]/ { print lines }' "$pacman_conf" > "$pacman_conf.vms"
  mv "$pacman_conf.vms" "$pacman_conf"
  # pacman 7 downloads as the unprivileged alpm user, who may not write into the host's root-owned cache directory.
  sed -i 's/^DownloadUser/#&/' "$pacman_conf"
  # -c: use the live system's CacheDirs instead of the target's cache
  pacstrap_opts+=(-c)
fi

phase keyring 600
# archiso fills its keyring at boot (pacman-init.service); wait for the boot to end, then take the current keyring so
# that packages signed by newer keys than the ISO's verify.
systemctl is-system-running --wait > /dev/null || true
pacman --config "$pacman_conf" -Sy --needed --noconfirm archlinux-keyring

phase pacstrap 3600
packages=(base linux mkinitcpio e2fsprogs sudo openssh qemu-guest-agent)
if [[ $VMS_FIRMWARE == efi ]]; then packages+=(dosfstools); else packages+=(grub); fi
# mkinitcpio's sd-vconsole hook fails without this file when pacstrap builds the initramfs.
printf 'KEYMAP=%s\n' "$VMS_KEYMAP" | put /etc/vconsole.conf
pacstrap -C "$pacman_conf" -K "${pacstrap_opts[@]}" "$target" "${packages[@]}"

phase configure 600
genfstab -U "$target" >> "$target/etc/fstab"

[[ -f $target/usr/share/zoneinfo/$VMS_TIMEZONE ]] || die "unknown timezone '$VMS_TIMEZONE'"
ln -sf "/usr/share/zoneinfo/$VMS_TIMEZONE" "$target/etc/localtime"
arch-chroot "$target" hwclock --systohc

# glibc lists every locale with its charset, e.g. "en_US.UTF-8 UTF-8": that is the line locale-gen wants.
locale_line=$(awk -v l="$VMS_LOCALE" '$1 == l { print; exit }' "$target/usr/share/i18n/SUPPORTED")
[[ -n $locale_line ]] || die "unknown locale '$VMS_LOCALE'"
echo "$locale_line" >> "$target/etc/locale.gen"
printf 'LANG=%s\n' "$VMS_LOCALE" | put /etc/locale.conf
arch-chroot "$target" locale-gen

echo "$VMS_HOSTNAME" | put /etc/hostname
printf '127.0.0.1 localhost\n::1 localhost\n127.0.1.1 %s\n' "$VMS_HOSTNAME" | put /etc/hosts

# Wired network by DHCP, names through resolved (the link is made outside arch-chroot, which mounts over resolv.conf).
printf '[Match]\nType=ether\n\n[Network]\nDHCP=yes\n' | put /etc/systemd/network/20-wired.network
ln -sf ../run/systemd/resolve/stub-resolv.conf "$target/etc/resolv.conf"

arch-chroot "$target" useradd -m -G wheel "$VMS_USER"
for account in root "$VMS_USER"; do
  arch-chroot "$target" usermod -p "$VMS_PASSWORD_HASH" "$account"
done
echo '%wheel ALL=(ALL:ALL) ALL' | put /etc/sudoers.d/10-wheel
chmod 440 "$target/etc/sudoers.d/10-wheel"
if [[ -n ${VMS_SSH_KEY:-} ]]; then
  for home in /root "/home/$VMS_USER"; do
    echo "$VMS_SSH_KEY" | put "$home/.ssh/authorized_keys"
    chmod 700 "$target$home/.ssh"
    chmod 600 "$target$home/.ssh/authorized_keys"
  done
  arch-chroot "$target" chown -R "$VMS_USER:" "/home/$VMS_USER/.ssh"
fi

# vms-identity gives a clone its own machine-id, host keys and hostname; this VM's name is the one it starts from.
install -D -m 755 "$here/vms-identity" "$target/usr/local/bin/vms-identity"
install -D -m 644 "$here/vms-identity.service" "$target/etc/systemd/system/vms-identity.service"
echo "$VMS_NAME" | put /var/lib/vms-identity/name

# qemu-guest-agent needs no enabling: udev starts it when its virtio port appears.
arch-chroot "$target" systemctl enable sshd.service systemd-networkd.service systemd-resolved.service fstrim.timer \
  serial-getty@ttyS0.service vms-identity.service

phase bootloader 300
if [[ $VMS_FIRMWARE == efi ]]; then
  arch-chroot "$target" bootctl install
  printf 'default arch.conf\ntimeout 1\neditor no\n' | put /boot/loader/loader.conf
  root_uuid=$(blkid -s UUID -o value "$root_part")
  [[ -n $root_uuid ]] || die "$root_part has no filesystem UUID"
  put /boot/loader/entries/arch.conf << EOF
title   Arch Linux
linux   /vmlinuz-linux
initrd  /initramfs-linux.img
options root=UUID=$root_uuid rw $cmdline_consoles
EOF
else
  arch-chroot "$target" grub-install --target=i386-pc "$VMS_DISK"
  # Later assignments win: /etc/default/grub is sourced by grub-mkconfig.
  cat >> "$target/etc/default/grub" << EOF

# vms: the kernel and GRUB also on the serial console, which vms drives
GRUB_CMDLINE_LINUX="$cmdline_consoles"
GRUB_TERMINAL="console serial"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_TIMEOUT=1
EOF
  arch-chroot "$target" grub-mkconfig -o /boot/grub/grub.cfg
fi

phase unmount 120
umount -R "$target"
for dir in "${cache_mounts[@]}"; do umount "$dir"; done
echo "install.sh: done"
