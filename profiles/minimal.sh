#!/bin/bash
# vms-description: the base system only, kept up to date
set -euo pipefail
# shellcheck source=_lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/_lib.sh" "$@"

phase minimal 1800
# Right after boot the network may not be up yet (DHCP): wait for it, or pacman fails to resolve the mirrors.
systemd-networkd-wait-online --timeout=120 || echo "vms: the network is not up after 120s; trying anyway"
# The keyring first, so that packages signed by keys newer than the installed keyring verify.
pacman -Sy --needed --noconfirm archlinux-keyring
pacman -Su --noconfirm
