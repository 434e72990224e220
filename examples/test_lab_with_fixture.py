"""Using vnet from your own pytest suite (root): the `vnet_lab` fixture comes with vnet.

    sudo .venv/bin/pytest examples/test_lab_with_fixture.py

The fixture applies the lab when the test asks for it and destroys it when the test ends,
whether the test passed, failed, or the apply itself failed half-way.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import vnet
from vnet.testing.plugin import LabFactory

LAB = Path(__file__).resolve().parent.parent / "topologies" / "linear.yaml"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="building a lab needs root")


def test_linear_lab_reaches_end_to_end(vnet_lab: LabFactory) -> None:
    lab = vnet_lab(LAB)
    report = vnet.verify(lab)
    assert report.ok, [o.hint for o in report.outcomes if not o.ok]
    assert vnet.plan(lab).empty  # nothing drifted while the test ran
