#!/bin/sh
# Installs promtool and Prometheus, which the alert rules tests (tests/alerts)
# and the native histogram test (tests/e2e) run, from Debian's prometheus
# package when they are missing.
exec sh "$(dirname "$0")/install-packages.sh" "promtool prometheus" prometheus \
  "install Prometheus (with promtool) from https://prometheus.io/download/ and run again"
