"""pytest plugin (registered as the `vnet` entry point): the `vnet_lab` fixture.

    def test_h1_reaches_h2(vnet_lab):
        lab = vnet_lab("topologies/routed.yaml")     # applied now, destroyed after the test
        assert vnet.verify(lab).ok

The fixture destroys every lab it applied when the test ends, whether it passed or failed,
and also when the apply itself failed half-way (destroy needs only the lab's name).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from vnet import api
from vnet.topology import load
from vnet.topology.lab import Lab

LabFactory = Callable[[str | Path], Lab]


@pytest.fixture
def vnet_lab() -> Iterator[LabFactory]:
    applied: list[str] = []

    def bring_up(path: str | Path) -> Lab:
        lab = load(str(path))
        applied.append(lab.name)
        api.apply(lab)
        return lab

    try:
        yield bring_up
    finally:
        for name in reversed(applied):
            api.destroy(name, wait=True)
