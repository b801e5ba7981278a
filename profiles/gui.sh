#!/bin/bash
# vms-parent: minimal
# vms-description: X11 + i3, the user logged in on tty1, clipboard and resizing through SPICE
set -euo pipefail
# shellcheck source=_lib.sh source-path=SCRIPTDIR
source "$(dirname "$0")/_lib.sh" "$@"

phase gui 1800
# spice-vdagentd needs no enabling: udev starts it when the SPICE port appears.
pkg xorg-server xorg-xinit i3-wm i3status dmenu xterm spice-vdagent noto-fonts ttf-dejavu

put "$root/etc/systemd/system/getty@tty1.service.d/autologin.conf" << EOF
[Service]
ExecStart=
ExecStart=-/sbin/agetty -o '-p -f -- \\\\u' --noclear --autologin $VMS_USER %I \$TERM
EOF

put "$home/.bash_profile" as_user << 'EOF'
[[ -f ~/.bashrc ]] && . ~/.bashrc

# vms gui: X on the first console. Not exec'd: when X fails, a shell stays to look at the cause.
if [[ -z ${DISPLAY:-} && ${XDG_VTNR:-} == 1 ]]; then
  startx
fi
EOF

put "$home/.xinitrc" as_user << 'EOF'
# vms gui: the SPICE agent (clipboard, display size follows the window), then i3
spice-vdagent
exec i3
EOF

# Other profiles add their autostarts as files in ~/.config/i3/config.d/, so no one edits this file.
put "$home/.config/i3/config" as_user << 'EOF'
# vms gui. Alt is the modifier: the host desktop tends to keep the Super key for itself.
set $mod Mod1
font pango:monospace 10
floating_modifier $mod

bindsym $mod+Return exec xterm -fa monospace -fs 11
bindsym $mod+d exec --no-startup-id dmenu_run
bindsym $mod+Shift+q kill
bindsym $mod+f fullscreen toggle
bindsym $mod+Shift+space floating toggle
bindsym $mod+h split h
bindsym $mod+v split v
bindsym $mod+e layout toggle split
bindsym $mod+w layout tabbed
bindsym $mod+Left focus left
bindsym $mod+Down focus down
bindsym $mod+Up focus up
bindsym $mod+Right focus right
bindsym $mod+Shift+Left move left
bindsym $mod+Shift+Down move down
bindsym $mod+Shift+Up move up
bindsym $mod+Shift+Right move right
bindsym $mod+1 workspace number 1
bindsym $mod+2 workspace number 2
bindsym $mod+3 workspace number 3
bindsym $mod+4 workspace number 4
bindsym $mod+Shift+1 move container to workspace number 1
bindsym $mod+Shift+2 move container to workspace number 2
bindsym $mod+Shift+3 move container to workspace number 3
bindsym $mod+Shift+4 move container to workspace number 4
bindsym $mod+Shift+r restart
bindsym $mod+Shift+e exec i3-msg exit

bar {
  status_command i3status
}

include ~/.config/i3/config.d/*.conf
EOF
