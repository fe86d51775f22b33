#!/usr/bin/env bash
# Installs the Debian packages `npm run test:hosts` needs, if they are missing:
#   nftables — nft, for the partitions and packet loss between node namespaces;
#   iproute2 — ip (netns, veth, bridge) and tc (netem or htb shaping).
# The test itself needs root (network namespaces); so does installing. As
# another user this says what is missing and fails, rather than letting the
# test pass without running.
set -euo pipefail
need=()
command -v nft >/dev/null 2>&1 || need+=(nftables)
{ command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1; } || need+=(iproute2)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "test:hosts needs root, and these missing Debian packages: ${need[*]} (as root: apt-get install -y ${need[*]})" >&2
  exit 1
fi
echo "installing Debian packages: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || apt-get update
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
