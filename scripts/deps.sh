#!/bin/sh
# Installs the Debian packages bitnetd needs to build and test, if missing.
# Idempotent. As non-root it prints the exact command and stops.
set -eu
pkgs="cmake make gcc pkg-config libuv1-dev libjansson-dev check python3 clang clang-format binutils groff-base"
# make lint: static analysis; make fuzz: libFuzzer comes with clang.
pkgs="$pkgs cppcheck clang-tidy"
# make bench: the report's charts.
pkgs="$pkgs gnuplot-nox"
# The Varlink interop test: the Go Varlink library, built offline with Debian's Go.
pkgs="$pkgs golang-go golang-github-varlink-go-dev"
# NEON tests run under qemu on x86-64 hosts.
case $(uname -m) in x86_64) pkgs="$pkgs gcc-aarch64-linux-gnu qemu-user" ;; esac
missing=""
for p in $pkgs; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "bitnetd needs these Debian packages:$missing"
    echo "Run as root:  apt-get update && apt-get install -y$missing"
    exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
