#!/usr/bin/env bash
# Debian packages socfarm needs on the controller (and its tests).
# Installs only what is missing; does nothing when everything is there.
set -euo pipefail
needed=(openssh-server openssh-client iproute2 procps util-linux hostname git make chromium
        # emulated boards (python -m orchestrator.virtual up --userland emulated): ARM root file systems
        # built with mmdebstrap, run through qemu-user registered with binfmt_misc
        # (arch-test: mmdebstrap's check of a foreign architecture, only a Recommends of it, so not installed
        # by --no-install-recommends; without it: "E: install arch-test for foreign architecture support")
        qemu-user-static binfmt-support mmdebstrap arch-test)
# A Python without the venv module (Debian's python3 without python3-venv).
python3 -c 'import ensurepip, venv' 2>/dev/null || needed+=(python3-venv)
missing=()
for pkg in "${needed[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
