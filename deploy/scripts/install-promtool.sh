#!/bin/sh
# Installs promtool, which the alert rules tests (tests/alerts) run, from
# Debian's prometheus package when it is missing. The package also ships a
# Prometheus server and its systemd unit; the tests only use promtool.
set -eu
if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
  elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "promtool is missing: run 'apt-get install prometheus' as root" >&2
    exit 1
  fi
  echo "installing promtool (the prometheus package) with apt-get (once)" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  command -v promtool >/dev/null 2>&1 || { echo "apt-get installed prometheus but promtool is not on PATH" >&2; exit 1; }
  exit 0
fi
echo "promtool is missing and this system has no apt-get: install it from https://prometheus.io/download/ (it comes with Prometheus) and run again" >&2
exit 1
