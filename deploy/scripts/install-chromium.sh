#!/bin/sh
# Installs a headless browser and its WebDriver server, which the status
# page test (cmd/jetmetrics/node, TestStatusPageInChromium) drives, from
# Debian's chromium and chromium-driver packages when they are missing.
set -eu
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
  elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
  else
    echo "chromium is missing: run 'apt-get install chromium chromium-driver' as root" >&2
    exit 1
  fi
  echo "installing chromium and chromium-driver with apt-get (once)" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
  command -v chromium >/dev/null 2>&1 || { echo "apt-get installed chromium but it is not on PATH" >&2; exit 1; }
  command -v chromedriver >/dev/null 2>&1 || { echo "apt-get installed chromium-driver but chromedriver is not on PATH" >&2; exit 1; }
  exit 0
fi
echo "chromium is missing and this system has no apt-get: install Chromium and its chromedriver (same version) with the system's packages and run again" >&2
exit 1
