#!/bin/sh
# Installs redis-server from the system's packages when it is missing.
# jetmetrics needs nothing else: NATS runs embedded in the node.
exec sh "$(dirname "$0")/install-packages.sh" redis-server redis-server \
  "install Redis 7 or newer (macOS: brew install redis; Fedora: dnf install redis) and run again, or point jetmetrics at a running Redis with --redis.url"
