#!/bin/bash
# The whole test suite: lint, strict typing, then every test tier. Extra arguments go to pytest.
# The tiers are all pytest: unit, golden, functional (root), OVS, and the guest-kernel tier
# (tests/kernel: boots Debian's kernel under QEMU once, ~3-4 min; VNET_SKIP_GUEST=1 skips it).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/tools/bootstrap.sh"
cd "$root"
echo "== ruff" >&2
.venv/bin/ruff check vnet tests bench examples tools
echo "== mypy --strict" >&2
.venv/bin/mypy vnet
echo "== pytest" >&2
# In a private network/mount/PID namespace: the host's OVS, labs and guests stay out of reach.
exec .venv/bin/python tools/sandbox.py .venv/bin/pytest "$@"
