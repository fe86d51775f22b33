#!/usr/bin/env bash
# Installs the npm dependencies from package-lock.json when they are missing
# or older than the lock file, so that `npm test` works in a fresh clone on
# its own (the README's second command), not only after `npm ci`.
# playwright-core drives Debian's chromium (scripts/system-deps.sh): never a downloaded browser.
set -euo pipefail
cd "$(dirname "$0")/.."
installed=node_modules/.package-lock.json
if [ -f "$installed" ] && [ "$installed" -nt package-lock.json ]; then exit 0; fi
echo "npm dependencies missing or older than package-lock.json: npm ci" >&2
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
