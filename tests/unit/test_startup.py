"""Start-up stays light (issue 15): what `vnet --version`, `--help` and a no-op plan import.

Each case runs in a fresh interpreter (this process has imported everything already) and lists
the heavy modules it ended up with. A module-level import of one of them anywhere on the path
(`from rich.table import Table` in vnet/cli/lab.py, `import networkx` in a check) fails here.
Why each is heavy, measured with `python -X importtime`: bench/README.md, `startup_bench.py`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Third-party libraries (and vnet.api, which brings every mechanism) that start-up can do without.
HEAVY = ("rich", "pydantic", "networkx", "ovsdbapp", "ovs", "pyroute2", "yaml", "netaddr", "qemu",
         "pycdlib", "asyncio", "vnet.api")
# A plan needs pydantic, PyYAML and netaddr (loading the file) and vnet.api; not these.
NOT_FOR_PLAN = ("rich", "networkx", "ovsdbapp", "ovs", "pyroute2", "qemu", "pycdlib", "asyncio")

REPORT = """
import json, sys
heavy = {heavy!r}
found = {{h for m in sys.modules for h in heavy if m == h or m.startswith(h + ".")}}
print(json.dumps(sorted(found)), file=sys.stderr)
"""

CLI = """
import sys
from vnet.cli import main
sys.argv = ["vnet", *{argv!r}]
try:
    main()
except SystemExit:
    pass
""" + REPORT

# A no-op plan of Linux bridges and namespaces without root or a host: load, compile, and the
# plan of a host that already matches (observed = desired), through the modules `vnet plan` uses.
PLAN = """
import vnet.api, vnet.cli.lab
from vnet.mechanisms.base import HostFacts
from vnet.pipeline.compile import compile_lab
from vnet.pipeline.plan import make_plan
from vnet.resources import ObservedState
from vnet.topology import load
desired = compile_lab(load({path!r}), HostFacts())
plan = make_plan(desired, ObservedState(desired.lab, dict(desired.resources)))
assert plan.empty and desired.resources, plan
""" + REPORT

LINEAR = """\
name: startup
networks:
  pool: {subnet: 198.18.0.0/24}
switches:
  s1: {type: linux}
  s2: {type: linux}
nodes:
  h1: {kind: netns}
  h2: {kind: netns}
links:
  - {endpoints: [h1:eth0, s1], network: pool}
  - {endpoints: [h2:eth0, s2], network: pool}
  - {endpoints: [s1, s2]}
"""


def imported(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    found: list[str] = json.loads(done.stderr.strip().splitlines()[-1])
    return found


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["plan", "--help"], ["validate", "--help"],
                                  ["host", "--help"]])
def test_the_cli_starts_without_heavy_modules(argv: list[str]) -> None:
    assert imported(CLI.format(argv=argv, heavy=HEAVY)) == []


def test_a_noop_plan_of_linux_bridges_needs_no_graph_ovs_guest_or_rich(tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(LINEAR)
    assert imported(PLAN.format(path=str(path), heavy=NOT_FOR_PLAN)) == []
