# shellcheck shell=bash
# Helpers for the profiles, which source this file from their own directory with the settings file:
#   source "$(dirname "$0")/_lib.sh" "$@"
# Everything here may run again on a VM that has it (`vms apply`), so every helper is idempotent.

# shellcheck source=/dev/null
source "${1:?usage: PROFILE.sh SETTINGS}"

# The system the profile configures; tests point it at a directory.
root=${VMS_ROOT:-}
# shellcheck disable=SC2034 # for the profiles
home=$root/home/$VMS_USER

phase() {
  echo "::vms-phase $1 $2"
}

pkg() {
  pacman -S --needed --noconfirm "$@"
}

enable_units() {
  systemctl enable "$@"
}

as_user() {
  runuser -u "$VMS_USER" -- "$@"
}

# put FILE [as_user]: stdin becomes FILE's content, its directory made as needed; a FILE that holds it already is
# left alone, so a second run changes nothing. A FILE with other content (the user's own edits) is kept as
# FILE.vms-old first. With as_user, the user writes it and owns what is made.
put() {
  local file=$1 new
  shift
  new=$(mktemp)
  cat > "$new"
  if ! cmp -s "$new" "$file"; then
    "$@" mkdir -p "$(dirname "$file")"
    if [[ -e $file ]]; then
      "$@" cp -p "$file" "$file.vms-old"
      echo "vms: $file differed from this profile's version: the old one is kept as $file.vms-old"
    fi
    "$@" tee "$file" < "$new" > /dev/null
  fi
  rm -f "$new"
}
