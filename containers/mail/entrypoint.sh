#!/bin/sh
# Waits for the `certs` step's certificate, then serves SMTP on 2525 (a port its non-root
# user may bind), STARTTLS required.
set -eu
root="${TLS_DIR:-/etc/giftcards/tls}"
i=0
until [ -f "$root/ready" ]; do
  i=$((i + 1)); [ "$i" -le 300 ] || { echo "no certificate in $root" >&2; exit 1; }
  sleep 1
done
exec /opt/mail/bin/python /opt/mail/smtp_server.py 2525 /var/mail/giftcards \
  "$root/mail/server.pem" "$root/mail/server.key"
