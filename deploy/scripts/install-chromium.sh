#!/bin/sh
# Installs a headless browser and its WebDriver server, which the status
# page test (cmd/jetmetrics/node, TestStatusPageInChromium) drives, from
# Debian's chromium and chromium-driver packages when they are missing.
exec sh "$(dirname "$0")/install-packages.sh" "chromium chromedriver" "chromium chromium-driver fonts-dejavu-core" \
  "install Chromium and its chromedriver (same version) with the system's packages and run again"
