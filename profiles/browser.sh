#!/bin/bash
# vms-parent: gui
# vms-description: Firefox and Chromium; Firefox starts with the desktop
set -euo pipefail
# shellcheck source=_lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/_lib.sh" "$@"

phase browser 1800
pkg firefox chromium
echo 'exec --no-startup-id firefox' | put "$home/.config/i3/config.d/browser.conf" as_user
