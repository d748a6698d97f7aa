#!/bin/sh
# Usage: install-packages.sh "COMMAND..." "PACKAGE..." "WHAT-TO-DO-ELSEWHERE"
# Installs Debian's PACKAGEs with apt-get (as root, or through sudo) unless
# every COMMAND is on PATH already; the Taskfile's redis, promtool,
# chromium and systemd-analyze tasks use it. Without apt-get it says
# WHAT-TO-DO-ELSEWHERE and fails.
set -eu
cmds=$1
pkgs=$2
otherwise=$3
missing=""
for c in $cmds; do
  command -v "$c" >/dev/null 2>&1 || missing="$missing $c"
done
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing:$missing, and this system has no apt-get: $otherwise" >&2
  exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  echo "missing:$missing: run 'apt-get install $pkgs' as root" >&2
  exit 1
fi
echo "installing $pkgs with apt-get (once)" >&2
$SUDO apt-get update -qq
# shellcheck disable=SC2086 # the package list splits on purpose
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
for c in $cmds; do
  command -v "$c" >/dev/null 2>&1 || { echo "apt-get installed $pkgs but $c is not on PATH" >&2; exit 1; }
done
