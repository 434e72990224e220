"""Golden tests of diagnostics: every `tests/golden/bad/*.yaml` against its `.expected` file.

Each bad file holds one mistake (or a small themed cluster); its `NAME.expected` is exactly what
`Diagnostic.format()` prints for each diagnostic, in `TopologyError` order, with the file named
relative to the repository root. `pytest --update-golden` rewrites the `.expected` files from the
current output; review the diff before committing it.

Warnings: a bad file may also produce warnings (e.g. `route-gateway-unreachable`); they are
recorded in the `.expected` file next to the errors. Every bad file must contain at least one
real error, so a file meant to show a warning also carries one error (see
`route-gateway-unreachable.yaml`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import vnet
from vnet.errors import TopologyError
from vnet.topology import diagnose

REPO = Path(__file__).resolve().parent.parent
BAD = REPO / "tests" / "golden" / "bad"
CASES = sorted(BAD.glob("*.yaml"))
# Valid files whose warnings are golden too (warnings that need a valid lab, e.g. its segments).
WARNINGS = sorted((REPO / "tests" / "golden" / "warn").glob("*.yaml"))


def _relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _formatted(relative: str) -> tuple[str, TopologyError]:
    lab, diagnostics = diagnose(relative)
    assert lab is None, f"{relative} is valid, but a bad golden file must fail"
    error = TopologyError(diagnostics)
    return "".join(d.format() + "\n" for d in error.diagnostics), error


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 45
    orphans = {p.stem for p in BAD.glob("*.expected")} - {p.stem for p in CASES}
    assert not orphans, f".expected files without a .yaml: {sorted(orphans)}"


@pytest.mark.parametrize("case", CASES, ids=[p.stem for p in CASES])
def test_diagnostics_match_golden(case: Path, update_golden: bool,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    relative = _relative(case)
    text, error = _formatted(relative)
    assert any(d.is_error for d in error.diagnostics), "a bad file needs at least one error"
    assert all(d.file == relative for d in error.diagnostics)
    expected_file = case.with_suffix(".expected")
    if update_golden:
        expected_file.write_text(text, encoding="utf-8")
        return
    assert expected_file.exists(), f"missing {expected_file.name}; run pytest --update-golden"
    assert text == expected_file.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", WARNINGS, ids=[p.stem for p in WARNINGS])
def test_warnings_match_golden(case: Path, update_golden: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    lab, diagnostics = diagnose(_relative(case))
    assert lab is not None and diagnostics and not any(d.is_error for d in diagnostics)
    assert tuple(lab.warnings) == tuple(diagnostics)
    text = "".join(d.format() + "\n" for d in TopologyError(diagnostics).diagnostics)
    expected_file = case.with_suffix(".expected")
    if update_golden:
        expected_file.write_text(text, encoding="utf-8")
        return
    assert text == expected_file.read_text(encoding="utf-8")


@pytest.mark.parametrize("case", CASES, ids=[p.stem for p in CASES])
def test_load_raises_topology_error_only(case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    relative = _relative(case)
    with pytest.raises(TopologyError) as caught:
        vnet.load(relative)
    assert type(caught.value) is TopologyError
    assert caught.value.exit_code == 65
    errors = [d for d in caught.value.diagnostics if d.is_error]
    assert errors
    assert caught.value.message == f"{len(errors)} error(s) in topology"
    # The exception carries exactly what `diagnose` reports.
    assert caught.value.diagnostics == TopologyError(diagnose(relative)[1]).diagnostics
