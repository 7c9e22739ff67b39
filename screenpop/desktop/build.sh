#!/usr/bin/env sh
# Rebuilds nats.bundle.js from package-lock.json's exact versions.
# Only needed after changing the NATS client version; Go builds and CI use
# the committed bundle and need no npm.
set -eu
cd "$(dirname "$0")"
npm ci --no-audit --no-fund
npm run build
