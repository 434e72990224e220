"""The `vnet_lab` pytest fixture (vnet's pytest11 plugin): brings a lab up, always tears it down."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from vnet import api
from vnet.topology import Lab

from .hostlib import leftovers, unique

pytestmark = pytest.mark.root

LAB = """
name: {lab}
switches:
  {lab}b1: {{type: linux}}
nodes:
  h1: {{kind: netns}}
  h2: {{kind: netns}}
links:
  - endpoints: [h1:eth0, {lab}b1]
    ip: 198.18.80.1/24
  - endpoints: [h2:eth0, {lab}b1]
    ip: 198.18.80.2/24
"""


def test_vnet_lab_fixture(vnet_lab: Callable[[str | Path], Lab], tmp_path: Path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(LAB.format(lab=unique("ex")))
    lab = vnet_lab(path)
    assert api.plan(lab).empty
    report = api.verify(lab)
    assert report.ok and {(o.probe.source, o.probe.target) for o in report.outcomes} == {
        ("h1", "h2"), ("h2", "h1")}


INNER = '''
from vnet import api

def test_passes(vnet_lab):
    assert api.verify(vnet_lab({ok!r})).ok

def test_fails_after_apply(vnet_lab):
    vnet_lab({failing!r})
    raise AssertionError("the test fails with the lab up")

def test_apply_fails_half_way(vnet_lab, monkeypatch):
    monkeypatch.setenv("VNET_TEST_FAULT", "fail:3")
    vnet_lab({half!r})
'''


def test_vnet_lab_fixture_always_tears_down(tmp_path: Path) -> None:
    """Run a small test suite with the plugin: whatever its tests do, their labs are gone after."""
    names = {"ok": unique("ex"), "failing": unique("ex"), "half": unique("ex")}
    files = {}
    for key, name in names.items():
        files[key] = str(tmp_path / f"{key}.yaml")
        Path(files[key]).write_text(LAB.format(lab=name))
    (tmp_path / "test_inner.py").write_text(INNER.format(**files))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               str(tmp_path / "test_inner.py")], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300, check=False)
        assert "2 failed, 1 passed" in done.stdout, done.stdout + done.stderr
        assert "injected fault" in done.stdout
    finally:
        left = {name: leftovers(name) for name in names.values()}
        for name, found in left.items():
            if found:
                api.destroy(name)
    assert left == {name: [] for name in names.values()}


def test_top_level_verb_verify_is_the_api_function() -> None:
    import vnet  # noqa: PLC0415
    import vnet.verification.prove  # noqa: PLC0415  (a submodule import must not shadow it)

    assert callable(vnet.verify)
    assert vnet.verify is vnet.api.verify
