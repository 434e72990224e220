"""Fixtures for the functional tests: real kernel, as root; every test cleans up after itself."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vnet import api
from vnet.pipeline.lock import RUN_DIR

from .hostlib import LabUnderTest, leftovers, namespace_names, run, unique


@pytest.fixture(autouse=True)
def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("functional tests change the host's network: they need root")


class Labs:
    """Makes uniquely named labs for one test and destroys all of them at its end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.made: list[LabUnderTest] = []

    def new(self, prefix: str = "t", name: str | None = None) -> LabUnderTest:
        lab = LabUnderTest(name or unique(prefix), self.directory / f"lab{len(self.made)}")
        lab.directory.mkdir()
        self.made.append(lab)
        return lab

    def cleanup(self) -> list[str]:
        problems: list[str] = []
        for lab in reversed(self.made):
            for attempt in range(5):  # keep trying: every lab must be removed, whatever happened
                try:
                    api.destroy(lab.name, wait=True)
                    break
                except Exception as exc:
                    if attempt == 4:
                        problems.append(f"destroy {lab.name}: {exc}")
                    time.sleep(1.0)
        for lab in self.made:
            problems += [f"lab {lab.name}: {what} left after destroy" for what in leftovers(lab.name)]
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(RUN_DIR, f"{lab.name}.lock"))
        return problems


@pytest.fixture
def labs(tmp_path: Path) -> Iterator[Labs]:
    made = Labs(tmp_path)
    yield made
    problems = made.cleanup()
    assert not problems, problems


class HandMade:
    """Objects a test creates by hand (as an administrator would), removed at its end."""

    def __init__(self) -> None:
        self.devices: list[str] = []
        self.namespaces: list[str] = []

    def bridge(self, name: str, alias: str | None = None) -> int:
        run("ip", "link", "add", name, "type", "bridge")
        self.devices.append(name)
        if alias is not None:
            run("ip", "link", "set", name, "alias", alias)
        return int(run("cat", f"/sys/class/net/{name}/ifindex").stdout)

    def namespace(self, name: str) -> None:
        run("ip", "netns", "add", name)
        self.namespaces.append(name)

    def cleanup(self) -> None:
        for name in self.devices:
            run("ip", "link", "del", name, check=False)
        present = set(namespace_names())
        for name in self.namespaces:
            if name in present:
                run("ip", "netns", "del", name, check=False)


@pytest.fixture
def hand() -> Iterator[HandMade]:
    made = HandMade()
    try:
        yield made
    finally:
        made.cleanup()
