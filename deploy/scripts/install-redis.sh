#!/bin/sh
# Installs redis-server from the system's packages when it is missing.
# jetmetrics needs nothing else: NATS runs embedded in the node.
set -eu
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
  elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "redis-server is missing: run 'apt-get install redis-server' as root, or point jetmetrics at a running Redis with --redis.url" >&2
    exit 1
  fi
  echo "installing redis-server with apt-get (once)" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  command -v redis-server >/dev/null 2>&1 || { echo "apt-get installed redis-server but it is not on PATH" >&2; exit 1; }
  exit 0
fi
echo "redis-server is missing and this system has no apt-get: install Redis 7 or newer (macOS: brew install redis; Fedora: dnf install redis) and run again, or pass --redis.url" >&2
exit 1
