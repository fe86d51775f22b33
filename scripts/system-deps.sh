#!/usr/bin/env bash
# Installs the Debian packages the tests need, if they are missing:
#   etcd-client — etcdctl, to check that etcd's own CLI works against quorumlog.
#   chromium — the real browser of the dashboard's end-to-end test (driven by
#     playwright-core, which never downloads a browser of its own).
#   python3-pika — RabbitMQ's Python client, for the AMQP tests (test/cluster/amqp-pika.py).
# Runs as root (CI and these machines do); elsewhere it says what to run and fails.
set -euo pipefail
need=()
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ -x /usr/bin/chromium ] || need+=(chromium)
/usr/bin/python3 -c 'import pika' >/dev/null 2>&1 || need+=(python3-pika) # Debian's python3, not one earlier on PATH
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages: ${need[*]}; install them with: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || apt-get update
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
