#!/bin/bash
# Install what vnet and its tests need on Debian 12, idempotently: Debian packages, a virtualenv
# in .venv, and vnet itself (editable) with its development tools. Run as root.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

apt_packages=(
  python3 python3-venv python3-pip   # the interpreter and venv
  graphviz                           # `vnet graph --format svg|png`
  iproute2 ethtool procps            # inspecting what vnet builds, in tests
  openvswitch-switch                 # OVS: tests start private ovsdb-server/ovs-vswitchd instances
  # The guest-kernel test tier (tests/kernel): virtme-ng (PyPI, in the venv) boots Debian's kernel
  # under QEMU with this machine's userspace. It needs QEMU, busybox for its initramfs, kmod for
  # modprobe in the guest, e2fsprogs for the disk images the tier hands the guest, and the kernel
  # itself: linux-image-amd64 puts it in /boot and its modules (openvswitch, 8021q…) in /lib/modules.
  qemu-system-x86 busybox-static kmod e2fsprogs
  linux-image-amd64
  # VMs of `image: tiny`: vnet builds their initramfs from Debian's cloud kernel (small, virtio
  # drivers as modules) and busybox-static.
  linux-image-cloud-amd64 netcat-openbsd  # netcat: copied into the tiny image for its UDP probes
  qemu-guest-agent                   # tests/vm/test_qga.py: qemu-ga on the host stands in for a guest's agent
)
missing=()
for package in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # INITRD=No: the kernel package's hook skips building an initramfs (minutes here, and unused:
  # virtme-ng builds its own). Nothing boots from /boot in this container: the running kernel
  # is not changed. --force-unsafe-io: no fsync per unpacked file (the kernel's modules are many).
  apt-get update -qq
  INITRD=No apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-unsafe-io \
    "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$python" -m venv .venv
fi
if [[ ! -f .venv/.installed || pyproject.toml -nt .venv/.installed ]]; then
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -e ".[dev]"
  touch .venv/.installed
fi
