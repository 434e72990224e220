#!/bin/bash
# Bring up the quickstart lab (three tiny QEMU guests, two namespaces, an OVS bridge and a Linux
# bridge) and prove it: `vnet apply --verify` builds it and checks every `expect` entry,
# including the pairs that must stay isolated. Re-running converges; `vnet destroy --lab
# quickstart` removes it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/tools/bootstrap.sh"
cd "$root"
lab=topologies/quickstart.yaml
vnet=.venv/bin/vnet
"$vnet" validate "$lab"
"$vnet" graph "$lab" --format svg -o quickstart.svg
"$vnet" apply "$lab" --verify
echo "--- vm1's address, from inside the guest:"
"$vnet" exec "$lab" vm1 -- ip -4 addr show eth0
echo "quickstart: lab up and verified (drawing: quickstart.svg). Remove it: $vnet destroy --lab quickstart"
