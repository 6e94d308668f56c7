#!/bin/bash
# Unpacks systemd-resolved into /opt/resolved for the end-to-end test, without installing the package: its
# postinst would replace the host's /etc/resolv.conf (see shared/recipes/lab-in-namespaces.md). Idempotent.
set -euo pipefail

target=/opt/resolved
binary="$target/lib/systemd/systemd-resolved"

if [[ ! -x "$binary" ]]; then
  work=$(mktemp -d) && chmod 755 "$work"  # readable by apt's _apt user
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get download systemd-resolved >/dev/null)
  debs=("$work"/systemd-resolved_*.deb)
  [[ -f "${debs[0]}" ]] || { echo "install-resolved: apt-get download systemd-resolved produced no .deb" >&2; exit 1; }
  mkdir -p "$target"
  dpkg -x "${debs[0]}" "$target"
fi
[[ -x "$binary" ]] || { echo "install-resolved: $binary missing after unpacking" >&2; exit 1; }

if ! getent passwd systemd-resolve >/dev/null; then
  useradd -r -M -s /usr/sbin/nologin systemd-resolve
fi
echo "install-resolved: $binary ready"
