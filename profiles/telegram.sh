#!/bin/bash
# vms-parent: gui
# vms-description: Telegram Desktop, started with the desktop
set -euo pipefail
# shellcheck source=_lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/_lib.sh" "$@"

phase telegram 1800
pkg telegram-desktop
echo 'exec --no-startup-id telegram-desktop' | put "$home/.config/i3/config.d/telegram.conf" as_user
