"""Fixtures: an SriovHost wired to FAKES (tests/sriov/fakes.py), never to the real host."""

from __future__ import annotations

from pathlib import Path

import pytest

from .rig import Rig, make_rig


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return make_rig(tmp_path)
