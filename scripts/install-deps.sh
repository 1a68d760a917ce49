#!/usr/bin/env bash
# The Debian packages the test suite needs, written down once: installed when
# missing (as root, with apt-get), or named with the command that installs them.
# scripts/test.sh runs it first; .ci/run through scripts/test.sh.
#
# usage: scripts/install-deps.sh          install what is missing, or explain
#        scripts/install-deps.sh --check  only say what is missing (exit 1 if any)
#
# Exit 0 when everything is there afterwards, 1 otherwise.
set -euo pipefail

# package  what shows that it is installed (a command, a file, or a module python3 imports)
# cmake: the C examples and the find_package/pkg-config consumers. mosquitto: the
# interop broker. valgrind: leak checks and instruction counts. clang: the header's
# doc comments name the real parameters. libpaho-mqtt-dev: the Paho gateway example.
# libmosquitto-dev: the libmosquitto gateway of docs/gateway.md (tests/docs.rs).
# dpkg, dpkg-dev, tar: cpack's .deb (dpkg-shlibdeps for its Depends) and .tar.gz, unpacked
# by tests/tooling/packaging.rs. binutils: nm, readelf, objdump, strip. doxygen: the C reference
# (docs/Doxyfile, tests/tooling/header/). abigail-tools: abidw and abidiff, the ABI check against
# abi/ (scripts/abi.sh, tests/tooling/abi.rs). python3, python3-venv: the vendors' device SDKs
# (ThingsBoard, Azure IoT Hub) in venvs installed from PyPI at test time (tests/peers/,
# tests/e2e/peers.rs); Debian's python3 has no ensurepip (so no pip in a venv) without python3-venv.
NEEDS="
cmake            cmd:cmake
mosquitto        cmd:mosquitto
valgrind         cmd:valgrind
pkg-config       cmd:pkg-config
gcc              cmd:gcc
g++              cmd:g++
clang            cmd:clang
make             cmd:make
libc6-dev        file:/usr/include/stdio.h
binutils         cmd:nm
libpaho-mqtt-dev file:/usr/include/MQTTClient.h
libmosquitto-dev file:/usr/include/mosquitto.h
dpkg             cmd:dpkg-deb
dpkg-dev         cmd:dpkg-shlibdeps
tar              cmd:tar
doxygen          cmd:doxygen
abigail-tools    cmd:abidiff
python3          cmd:python3
python3-venv     py:ensurepip
"

missing() {
    local pkg probe
    while read -r pkg probe; do
        [ -n "$pkg" ] || continue
        case "$probe" in
        cmd:*) PATH="$PATH:/usr/sbin:/sbin" command -v "${probe#cmd:}" >/dev/null 2>&1 || echo "$pkg" ;;
        file:*) [ -e "${probe#file:}" ] || echo "$pkg" ;;
        py:*) python3 -c "import ${probe#py:}" >/dev/null 2>&1 || echo "$pkg" ;;
        esac
    done <<<"$NEEDS"
}

todo="$(missing | tr '\n' ' ')"
todo="${todo% }"
[ -z "$todo" ] && exit 0

if [ "${1:-}" != "--check" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing the test suite's Debian packages: $todo"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    # shellcheck disable=SC2086 # one word per package
    apt-get install -y --no-install-recommends $todo </dev/null
    todo="$(missing | tr '\n' ' ')"
    todo="${todo% }"
    [ -z "$todo" ] && exit 0
fi

echo "missing Debian packages: $todo" >&2
echo "install them with: sudo apt-get install -y $todo" >&2
exit 1
