// The opening every labgate command script shares. SSM's AWS-RunShellScript writes the command text to a
// file and runs it with /bin/sh (dash on Debian/Ubuntu): the script starts over under bash from that file.
import { shQuote } from "./shell.ts";

/** Bash: LAB, log and fail (every message starts with "labgate <lab>:"), and a failing command fails loudly. */
export const messageFunctions = (lab: string): string => `readonly LAB=${shQuote(lab)}
log() { printf 'labgate %s: %s\\n' "$LAB" "$*"; }
fail() {
  printf 'labgate %s: FAILED: %s\\n' "$LAB" "$*" >&2
  exit 1
}
trap 'fail "line $LINENO exited with status $?: $BASH_COMMAND"' ERR`;

export const prelude = (title: string, lab: string): string => `#!/bin/bash
# ${title}
# Run it with bash, or with sh as SSM does: it re-executes itself with bash.
if [ -z "\${BASH_VERSION:-}" ]; then exec /bin/bash "$0" "$@"; fi
set -Eeuo pipefail
umask 022
PATH=$PATH:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

${messageFunctions(lab)}

# require_commands NAME...: fails naming every missing program at once.
require_commands() {
  local name missing=()
  for name in "$@"; do command -v "$name" >/dev/null 2>&1 || missing+=("$name"); done
  ((\${#missing[@]} == 0)) || fail "missing programs: \${missing[*]}"
}`;

/**
 * Bash: put_file MODE PATH < content installs PATH (root-owned) only when content, mode or owner differ, and
 * restore_labels PATH... gives paths their SELinux labels back when SELINUX_LABELS is 1 (set by the preflight):
 * a file made in a temporary place, or by a service in another domain, may carry a label that makes
 * NetworkManager or systemd refuse it.
 */
export const PUT_FILE_FUNCTION = `restore_labels() {
  if ((\${SELINUX_LABELS:-0})); then restorecon -F "$@"; fi
}

# put_file MODE PATH < CONTENT: writes PATH, root-owned, only if it differs; sets PUT_CHANGED to 1 or 0.
PUT_CHANGED=0
put_file() {
  local mode=$1 path=$2 tmp
  # A missing folder is created 0755; an existing one keeps its mode (the key's is 0700).
  if [[ ! -d \${path%/*} ]]; then
    install -d -m 0755 "\${path%/*}"
    restore_labels "\${path%/*}"
  fi
  tmp=$(mktemp "$path.labgate-XXXXXX")
  cat >"$tmp"
  if [[ -f $path && $(stat -c %a:%u:%g "$path") == "\${mode#0}:0:0" ]] && cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
    PUT_CHANGED=0
    log "unchanged $path"
  else
    chown 0:0 "$tmp"
    chmod "$mode" "$tmp"
    mv -f "$tmp" "$path"
    restore_labels "$path"
    PUT_CHANGED=1
    log "wrote $path"
  fi
}`;

/** How long a setup or stop-vpn waits for another one of the same lab on the runner (SSM's timeout is 15 min). */
export const COMMAND_LOCK_WAIT_SECONDS = 600;

/**
 * Bash, right after the prelude of the setup and stop-vpn scripts: one labgate command of the lab at a time on
 * the runner, held until the script exits, so a stop never interleaves with a setup that could bring the VPN
 * back, and two setups never write the same files. A folder only root may enter holds it (a local user could
 * otherwise hold it and stall every command). The dispatcher's own lock is another file: no deadlock.
 */
export const commandLock = (lockPath: string): string => `readonly COMMAND_LOCK=${shQuote(lockPath)}
install -d -m 0700 -o root -g root "\${COMMAND_LOCK%/*}"
exec 8>"$COMMAND_LOCK"
if ! flock -n 8; then
  log "waiting for another labgate command of lab $LAB on this runner ($COMMAND_LOCK)"
  flock -w ${COMMAND_LOCK_WAIT_SECONDS} 8 || fail "another labgate command of lab $LAB has held $COMMAND_LOCK for ${COMMAND_LOCK_WAIT_SECONDS} s"
fi`;
