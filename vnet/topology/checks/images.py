"""Images of `vm` nodes: their files exist, are regular readable files inside the topology's
directory (or absolute), a disk is qcow2 or raw, and `memory` is enough for the image to boot.
The policy lives in vnet/topology/images.py."""

from __future__ import annotations

from vnet.topology.checks.context import CheckContext
from vnet.topology.images import MEMORY_FLOORS, ImageProblem, image_fields, image_kind, inspect_image
from vnet.topology.model import VmNode


def check_images(ctx: CheckContext) -> None:
    """One diagnostic per unusable file, at `nodes.<node>.image.<field>` (or the `defaults:`
    entry the image came from). A stat and a read-only open per file: no other side effect."""
    for name, node in ctx.topology.nodes.items():
        if not isinstance(node, VmNode):
            continue
        _check_memory(ctx, name, node)
        for field, written in image_fields(node.image):
            result = inspect_image(ctx.loaded.file, field, written)
            if isinstance(result, ImageProblem):
                ctx.report(("nodes", name, "image", field), result.code, result.message, result.hint)


def _check_memory(ctx: CheckContext, name: str, node: VmNode) -> None:
    kind = image_kind(node.image)
    floor = MEMORY_FLOORS[kind]
    if node.memory < floor.mib:
        image = "the tiny image" if kind == "tiny" else f"a {kind} image"
        ctx.report(("nodes", name, "memory"), "memory-too-small",
                   f"{node.memory} MiB is less than the {floor.mib} MiB {image} needs to boot",
                   f"give `{name}` at least `memory: {floor.mib}` (or `{floor.mib}M`): {floor.why}")
