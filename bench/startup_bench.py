"""Benchmark: what a `vnet` command costs before it does anything (issue 15, "Start-up").

    .venv/bin/python bench/startup_bench.py                        # 15 rounds, linear,100
    .venv/bin/python bench/startup_bench.py --repeat 31            # steadier on a busy machine
    .venv/bin/python bench/startup_bench.py --baseline-tree DIR    # and an earlier vnet, same run
    .venv/bin/python bench/startup_bench.py --ovs                  # plan where an OVSDB answers

Targets, measured in one run: `vnet --version` at most 2x `python -c "import click"` (the same
interpreter: the floor of any click program), and a no-op `vnet plan FILE` of linear,100 at most
2x `vnet --version`.

Each round runs, one after the other and in a rotating order (a machine that gets busier weighs
on every command alike), fresh processes of `python -c "import click"`, `vnet --version`,
`vnet validate FILE` and `vnet plan FILE`, where FILE is bench/linear_bench.py's linear,100
(100 namespaces, 100 Linux bridges, 199 links), applied once beforehand so that the plan has no
changes. Medians (wall clock, and the child's CPU time: steadier when other work shares the
CPUs) and the ratios are printed. `--baseline-tree DIR` runs the vnet commands with DIR's
vnet too (a copy of an earlier tree, e.g. `git archive REV vnet | tar -x -C DIR`, put first on
PYTHONPATH of the same console script and venv), in the same rounds.

Root only for the plan: the script runs itself inside tools/sandbox.py (private network, mount
and PID namespaces: the lab never touches the host) and destroys the lab at the end; without
root it measures the rest and says so. With `--ovs` it starts a private Open vSwitch in the
sandbox (`vnet ovs start`, stopped at the end), so that plan reads an OVSDB as on a host that
runs OVS. Byte code is cached as for an installed vnet: PYTHONDONTWRITEBYTECODE is dropped and
the .pyc files go to a private PYTHONPYCACHEPREFIX, filled by a warm-up round.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
TREE = HERE.parent
PYTHON = str(Path(sys.executable).with_name("python"))
VNET = str(Path(sys.executable).with_name("vnet"))
SANDBOX = TREE / "tools" / "sandbox.py"
TARGET = 2.0


@dataclass
class Command:
    label: str
    argv: list[str]
    env: dict[str, str]
    times: list[tuple[float, float]] = field(default_factory=list)  # (wall, CPU) per round

    @property
    def wall(self) -> float:
        return statistics.median(t[0] for t in self.times)

    @property
    def cpu(self) -> float:
        return statistics.median(t[1] for t in self.times)


def run(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall clock and CPU time (user + system) of one process, and its output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {done.returncode}\n{done.stdout}{done.stderr}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, done.stdout


def measure(commands: dict[str, Command], repeat: int) -> None:
    names = list(commands)
    for command in commands.values():  # warm-up: byte code written, page cache filled
        run(command.argv, command.env)
    for k in range(repeat):
        for name in names[k % len(names):] + names[:k % len(names)]:
            wall, cpu, _ = run(commands[name].argv, commands[name].env)
            commands[name].times.append((wall, cpu))


def report(commands: dict[str, Command], trees: list[str]) -> list[str]:
    """Print the medians and ratios; the targets missed (this tree's)."""
    print(f"\n  {'command':44} {'median ms':>10} {'min ms':>8} {'CPU ms':>8}")
    for command in commands.values():
        fastest = min(t[0] for t in command.times)
        print(f"  {command.label:44} {1e3 * command.wall:10.1f} {1e3 * fastest:8.1f} "
              f"{1e3 * command.cpu:8.1f}")
    missed = []
    print(f"\n  {'ratio of medians':44} {'wall':>10} {'CPU':>8}  target")
    for tree in trees:
        for over, under, target in (("version", "click", True), ("validate", "version", False),
                                    ("plan", "version", True)):
            a, b = commands.get(over + tree), commands.get(under if under == "click" else under + tree)
            if a is None or b is None:
                continue
            ratio = a.wall / b.wall
            verdict = ""
            if target:
                verdict = f"<= {TARGET:.0f}x  {'met' if ratio <= TARGET else 'MISSED'}"
                if ratio > TARGET and not tree:
                    missed.append(f"{over}/{under}")
            print(f"  {f'{over} / {under}' + (' (baseline)' if tree else ''):44} {ratio:9.2f}x "
                  f"{a.cpu / b.cpu:7.2f}x  {verdict}")
    if len(trees) > 1:
        for name in ("version", "validate", "plan"):
            if name in commands and name + trees[1] in commands:
                now, then = commands[name], commands[name + trees[1]]
                print(f"  {f'{name}: this tree / baseline':44} {now.wall / then.wall:9.2f}x "
                      f"{now.cpu / then.cpu:7.2f}x")
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--n", type=int, default=100, help="linear,N (default 100)")
    parser.add_argument("--baseline-tree", metavar="DIR", help="a tree holding an earlier vnet/")
    parser.add_argument("--ovs", action="store_true", help="start a private OVS in the sandbox first")
    args = parser.parse_args()
    if os.geteuid() == 0 and os.environ.get("VNET_TEST_SANDBOX") != "1":
        os.execv(sys.executable, [sys.executable, str(SANDBOX), sys.executable, *sys.argv])

    sys.path.insert(0, str(HERE))
    from linear_bench import topology_yaml  # noqa: PLC0415 (imports vnet: not before the re-exec)

    workdir = Path(tempfile.mkdtemp(prefix="startup_bench-"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    lab = f"su{secrets.token_hex(3)}"
    path = workdir / f"linear{args.n}.yaml"
    path.write_text(topology_yaml(lab, args.n))
    root = os.geteuid() == 0
    trees = {"": env}
    if args.baseline_tree:
        trees[" (baseline)"] = {**env, "PYTHONPATH": str(Path(args.baseline_tree).resolve())}
    commands = {"click": Command('python -c "import click"', [PYTHON, "-c", "import click"], env)}
    for tree, tree_env in trees.items():
        commands["version" + tree] = Command("vnet --version" + tree, [VNET, "--version"], tree_env)
        commands["validate" + tree] = Command(f"vnet validate linear,{args.n}" + tree,
                                              [VNET, "validate", str(path)], tree_env)
        if root:
            commands["plan" + tree] = Command(f"vnet plan linear,{args.n} (no-op)" + tree,
                                              [VNET, "plan", str(path)], tree_env)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.repeat} rounds; "
          f"load average {os.getloadavg()[0]:.2f}")
    applied = ovs_started = False
    try:
        if not root:
            print("not root: no plan (it needs the lab applied in the sandbox)")
        else:
            if args.ovs:
                run([VNET, "ovs", "start"], env)
                ovs_started = True
            run([VNET, "apply", str(path)], env)
            applied = True
            for tree_env in trees.values():
                _, _, out = run([VNET, "plan", str(path)], tree_env)
                if "no changes" not in out:
                    raise SystemExit(f"the plan after apply is not empty:\n{out}")
            print(f"linear,{args.n} applied in the sandbox (lab {lab}); "
                  + ("a private OVS answers" if args.ovs else "no OVSDB answers"))
        measure(commands, args.repeat)
        missed = report(commands, list(trees))
    finally:
        if applied:
            run([VNET, "destroy", str(path)], env)
        if ovs_started:
            run([VNET, "ovs", "stop"], env)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nload average {os.getloadavg()[0]:.2f}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
