#!/bin/bash
# Bring up the quickstart lab and prove it.
# At this stage vnet validates the lab and draws it; building it on the host comes next.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/tools/bootstrap.sh"
cd "$root"
lab=topologies/quickstart.yaml
.venv/bin/vnet validate "$lab"
.venv/bin/vnet graph "$lab" --format svg -o quickstart.svg
echo "quickstart: $lab is valid; drawing in quickstart.svg"
