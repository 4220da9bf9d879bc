#!/bin/sh
# Creates the porthole system user and its state folder, and enables the
# units on a machine running systemd. It starts nothing: the administrator
# reviews /etc/porthole/gateway.json first, then runs
# `systemctl start porthole-gateway`.
set -e
if ! getent group porthole >/dev/null; then
  addgroup --system porthole >/dev/null 2>&1 || groupadd --system porthole
fi
if ! getent passwd porthole >/dev/null; then
  adduser --system --ingroup porthole --home /var/lib/porthole --no-create-home \
    --shell /usr/sbin/nologin --gecos "Porthole gateway" porthole >/dev/null 2>&1 ||
  useradd --system --gid porthole --home-dir /var/lib/porthole --shell /usr/sbin/nologin porthole
fi
mkdir -p /var/lib/porthole /etc/porthole/rules
chown porthole:porthole /var/lib/porthole
chmod 0750 /var/lib/porthole
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
  systemctl enable porthole-gateway.service porthole-launcher.service >/dev/null 2>&1 || true
fi
exit 0
