#!/bin/bash
# vms-parent: gui
# vms-description: git, neovim, tmux, ripgrep, the build tools and Docker
set -euo pipefail
# shellcheck source=_lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/_lib.sh" "$@"

phase dev 1800
# The terminal is gui's xterm; tmux makes it a workbench.
pkg git neovim tmux ripgrep base-devel docker
enable_units docker.service
# -a: added to the group, kept in the others (a second run adds nothing)
usermod -aG docker "$VMS_USER"
