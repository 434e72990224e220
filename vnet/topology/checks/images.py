"""Image files of `vm` nodes: they exist, are regular readable files inside the topology's
directory (or absolute), and a disk is qcow2 or raw. The policy lives in vnet/topology/images.py."""

from __future__ import annotations

from vnet.topology.checks.context import CheckContext
from vnet.topology.images import ImageProblem, image_fields, inspect_image
from vnet.topology.model import VmNode


def check_images(ctx: CheckContext) -> None:
    """One diagnostic per unusable file, at `nodes.<node>.image.<field>` (or the `defaults:`
    entry the image came from). A stat and a read-only open per file: no other side effect."""
    for name, node in ctx.topology.nodes.items():
        if not isinstance(node, VmNode):
            continue
        for field, written in image_fields(node.image):
            result = inspect_image(ctx.loaded.file, field, written)
            if isinstance(result, ImageProblem):
                ctx.report(("nodes", name, "image", field), result.code, result.message, result.hint)
