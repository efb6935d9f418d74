#!/usr/bin/env bash
# Installs the Debian packages ringlab builds and tests with. Idempotent: when everything is
# already installed it prints one line and touches nothing.
#   scripts/setup.sh            # build + test dependencies (CPU, viz, benchmarks)
set -euo pipefail

packages=(
  cmake g++ ninja-build pkg-config
  libeigen3-dev catch2 libcli11-dev nlohmann-json3-dev libfmt-dev
  libbenchmark-dev
  libimgui-dev libglfw3-dev libstb-dev xvfb xauth libgl1-mesa-dri fonts-dejavu-core
  python3
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} Debian packages already installed"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
