"""examples/ run as documented, and every complete lab shown in README.md is valid."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import vnet
from vnet.errors import EX_DATAERR

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
VNET = Path(sys.executable).parent / "vnet"

BAD = """\
name: bad
switches:
  br: {type: linux}
nodes:
  h1: {}
links:
  - {endpoints: [h1:eth0, br], vlan: 10, ip: 198.18.0.1/24}
"""


def _run(*argv: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], cwd=REPO, capture_output=True, text=True, check=False,
                          timeout=120, env={**os.environ, **(env or {})})


def test_validate_and_draw_describes_a_lab(tmp_path: Path) -> None:
    dot = tmp_path / "quickstart.dot"
    done = _run(sys.executable, EXAMPLES / "validate_and_draw.py", "topologies/quickstart.yaml",
                "--dot", dot)
    assert done.returncode == 0, done.stderr
    assert "lab quickstart" in done.stdout
    assert "vm1 -> vm2" in done.stdout and "h1 -x h2" in done.stdout
    assert dot.read_text().startswith('graph "quickstart"')


def test_validate_and_draw_reports_diagnostics(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    done = _run(sys.executable, EXAMPLES / "validate_and_draw.py", bad)
    assert done.returncode == EX_DATAERR
    assert f"{bad}:7:" in done.stderr and "error[vlan-unaware-bridge]" in done.stderr


def test_ci_validate_passes_on_the_reference_labs() -> None:
    done = _run(EXAMPLES / "ci-validate.sh", env={"VNET": str(VNET)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "quickstart.yaml: ok" in done.stdout


def test_ci_validate_fails_the_job_on_a_bad_topology(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(BAD)
    (tmp_path / "good.yaml").write_text(BAD.replace("vlan: 10, ", ""))
    (tmp_path / "ci.yml").write_text("stages: [test]\n")  # not a topology: skipped
    done = _run(EXAMPLES / "ci-validate.sh", tmp_path, env={"VNET": str(VNET), "GITHUB_ACTIONS": "true"})
    assert done.returncode == EX_DATAERR
    assert "2 topology file(s)" in done.stderr
    assert "good.yaml: ok" in done.stdout
    assert f"::error file={tmp_path / 'bad.yaml'},line=7," in done.stdout


def _readme_labs() -> list[tuple[int, str]]:
    """(line, text) of every ```yaml block in README.md that is a whole lab (has `name:`)."""
    text = (REPO / "README.md").read_text()
    blocks = []
    for match in re.finditer(r"^```yaml\n(.*?)^```", text, re.S | re.M):
        body = match.group(1)
        if re.search(r"^name: ", body, re.M):
            blocks.append((text.count("\n", 0, match.start()) + 1, body))
    return blocks


def test_readme_has_lab_examples() -> None:
    assert len(_readme_labs()) >= 5


def _block_id(value: object) -> str:
    return f"line{value}" if isinstance(value, int) else ""


@pytest.mark.parametrize(("line", "body"), _readme_labs(), ids=_block_id)
def test_readme_lab_is_valid(line: int, body: str, tmp_path: Path) -> None:
    path = tmp_path / f"readme-{line}.yaml"
    path.write_text(body)
    lab, diagnostics = vnet.diagnose(str(path))
    shown = "\n".join(d.format() for d in diagnostics)
    assert lab is not None, f"README.md line {line}:\n{shown}"
    assert not diagnostics, f"README.md line {line}:\n{shown}"
