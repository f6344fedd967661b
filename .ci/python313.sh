#!/usr/bin/env bash
# The second interpreter for CI's lerobot 0.6 stack: CPython 3.13 built from Debian 13 (trixie)'s source package
# on this Debian 12 machine, whose own Python is 3.11 (lerobot 0.6 needs >= 3.12). Prints the interpreter's path.
# An existing build under the prefix is reused (a few ms); a fresh one took ~2.5 min on 2 cores (no PGO: it would
# triple the build time for a test interpreter). Upstream sources only (the package's .orig tarball): Debian's
# patches move site-packages to dist-packages, which a venv made from a --prefix build does not expect.
# Usage: .ci/python313.sh [PREFIX]   (default /opt/cpython-3.13; $PYTHON313_PREFIX also sets it)
set -euo pipefail
prefix="${1:-${PYTHON313_PREFIX:-/opt/cpython-3.13}}"
python="$prefix/bin/python3.13"

# Reuse a build whose stdlib modules that pip, torch and lerobot need are all there.
if "$python" -c "import ssl, sqlite3, lzma, bz2, ctypes, zlib, readline, uuid" >/dev/null 2>&1; then
  echo "$python"; exit 0
fi

deps=(dpkg-dev build-essential pkg-config libssl-dev libffi-dev zlib1g-dev libbz2-dev liblzma-dev libsqlite3-dev
      libreadline-dev libncurses-dev uuid-dev libexpat1-dev xz-utils)
need=()
for pkg in "${deps[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done

# trixie's sources only (deb-src), so nothing installed from Debian 12's own archive changes.
src=/etc/apt/sources.list.d/trixie-src.sources
if [ ! -f "$src" ]; then
  printf '%s\n' 'Types: deb-src' 'URIs: http://deb.debian.org/debian' 'Suites: trixie' 'Components: main' \
    'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' > "$src"
fi
apt-get update -q >/dev/null
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

work="$(mktemp -d /var/tmp/cpython313.XXXXXX)"
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get source -q --download-only python3.13 >/dev/null 2>&1
tar xf python3.13_*.orig.tar.xz
cd Python-3.13*/
./configure -q --prefix="$prefix" --with-ensurepip=install >/dev/null
make -s -j"$(nproc)" >/dev/null 2>&1
make -s altinstall >/dev/null 2>&1
"$python" -c "import ssl, sqlite3, lzma, bz2, ctypes, zlib, readline, uuid" >&2
echo "$python"
