#!/usr/bin/env python3
"""Bring a lab up, prove it, show its plan is empty, and tear it down: the Python API (root).

    sudo .venv/bin/python examples/apply_and_verify.py topologies/linear.yaml
"""

from __future__ import annotations

import sys

import vnet
from vnet.errors import VnetError


def main(path: str) -> int:
    try:
        lab = vnet.load(path)  # TopologyError (exit 65) lists every problem of the file
        print(f"plan: {vnet.plan(lab).counts()}")
        report = vnet.apply(lab)  # rolls back its own changes if one fails
        print(f"applied in {report.seconds:.2f} s")
        try:
            proof = vnet.verify(lab)
            for outcome in proof.outcomes:
                print(("ok  " if outcome.ok else "FAIL"), outcome.probe, outcome.hint)
            assert vnet.plan(lab).empty, "a re-apply would change something"
            return 0 if proof.ok else 1
        finally:
            vnet.destroy(lab.name)  # needs only the name: works after a crash too
    except VnetError as exc:
        print(exc.format(), file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "topologies/linear.yaml"))
