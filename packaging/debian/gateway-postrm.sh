#!/bin/sh
# The store in /var/lib/porthole is kept on removal; purge removes it and the user.
set -e
if [ "$1" = "purge" ]; then
  rm -rf /var/lib/porthole
  deluser --system porthole >/dev/null 2>&1 || userdel porthole >/dev/null 2>&1 || true
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
