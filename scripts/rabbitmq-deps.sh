#!/usr/bin/env bash
# Installs Debian's rabbitmq-server (3.10.8 on Debian 12, with quorum queues)
# for the AMQP benchmark (bench/amqp.ts), if it is missing. The benchmark runs
# its own 3-node cluster under a temporary directory (bench/rabbitmq.ts); the
# package's default service must not run: it would listen on 5672 (where
# quorumlog's own AMQP listener goes) and 25672, and eat CPU the benchmark
# measures. So the package's postinst is kept from starting it (a temporary
# /usr/sbin/policy-rc.d that answers 101, when none is there already), and
# afterwards any server the package started anyway (processes of the
# `rabbitmq` user: beam.smp, epmd) is stopped, and the service disabled.
#
# Runs as root (CI and these machines do); elsewhere it says what to run and
# fails. Prints nothing and exits 0 when rabbitmq-server is already there.
set -euo pipefail
RABBIT_BIN=/usr/lib/rabbitmq/bin/rabbitmq-server
if [ -x "$RABBIT_BIN" ] && command -v erl >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "rabbitmq-server is not installed; install it with: sudo bash scripts/rabbitmq-deps.sh" >&2
  exit 1
fi
echo "installing Debian package rabbitmq-server (for the AMQP benchmark; its service is kept stopped)" >&2
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# temporary, from quorumlog scripts/rabbitmq-deps.sh: no service starts during this install\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  made_policy=1
fi
cleanup() { if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT
apt-get update -qq >/dev/null || apt-get update
# Another install on this shared machine may hold dpkg's lock: wait for it rather than fail.
apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=600 rabbitmq-server >/dev/null

# Belt and braces: the service disabled for boot, and nothing of the package's user left running.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl disable --now rabbitmq-server.service >/dev/null 2>&1 || true
fi
update-rc.d rabbitmq-server disable >/dev/null 2>&1 || true
if id rabbitmq >/dev/null 2>&1; then
  for pid in $(pgrep -u rabbitmq || true); do
    echo "stopping process $pid ($(ps -o comm= -p "$pid" || true)) that the package started" >&2
    kill "$pid" 2>/dev/null || true
  done
  sleep 1
  for pid in $(pgrep -u rabbitmq || true); do kill -9 "$pid" 2>/dev/null || true; done
fi
if command -v ss >/dev/null 2>&1 && ss -Hltnp '( sport = :5672 or sport = :25672 )' | grep -q 'beam'; then
  echo "an Erlang VM still listens on 5672 or 25672 after the install:" >&2
  ss -Hltnp '( sport = :5672 or sport = :25672 )' >&2
  exit 1
fi
[ -x "$RABBIT_BIN" ] || { echo "rabbitmq-server installed, but $RABBIT_BIN is missing" >&2; exit 1; }
