"""Fixtures: an SriovHost wired to FAKES (tests/sriov/fakes.py); the pipeline rig also makes real
TAP devices standing in for VF netdevs (tests/sriov/standins.py) and removes them at the end."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vnet.mechanisms import sriov

from .pipeline_rig import PipelineRig, make_pipeline_rig
from .rig import Rig, make_rig


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return make_rig(tmp_path)


@pytest.fixture
def pipeline_rigs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., PipelineRig]]:
    """Makes the session's SR-IOV layer: FAKES of sysfs/netlink/devlink/clock, real TAPs as VF
    netdevs (the last one made is the session's); every TAP made is removed at the end."""
    made: list[PipelineRig] = []

    def make(**options: Any) -> PipelineRig:
        rig = make_pipeline_rig(tmp_path / f"rig{len(made)}", **options)
        made.append(rig)
        monkeypatch.setattr(sriov, "HOST_FACTORY", lambda: rig.host)
        return rig

    try:
        yield make
    finally:
        for rig in made:
            rig.standins.cleanup()


@pytest.fixture
def pipeline_rig(pipeline_rigs: Callable[..., PipelineRig]) -> PipelineRig:
    return pipeline_rigs()
