#!/bin/sh
# On removal (not upgrade), stop and disable the units where systemd runs.
set -e
if [ "$1" = "remove" ] && [ -d /run/systemd/system ]; then
  systemctl disable --now porthole-gateway.service porthole-launcher.service >/dev/null 2>&1 || true
fi
exit 0
