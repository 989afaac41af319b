"""The pack's nodes in ComfyUI's V3 schema (comfy_api.latest): `comfy_entrypoint` returns an extension
whose nodes are built from the V1 node classes (nodes/mappings.py) and their specs (nodes/specs.py).

Each V3 node wraps its V1 class rather than copying it: the schema comes from the V1 class's
INPUT_TYPES (read at every call, so the checkpoint list stays current), `execute` calls the V1
function, `validate_inputs` is the V1 VALIDATE_INPUTS, and the guard's `VRAM_ESTIMATE` classmethod
is carried over. Node ids, input names and defaults are the V1 ones, so saved workflows load.
Imported only when ComfyUI has comfy_api.latest (see nodes/entry.py).
"""
from comfy_api.latest import ComfyExtension, io

from ..mappings import NODE_CLASS_MAPPINGS as V1_CLASSES
from ..mappings import NODE_DISPLAY_NAME_MAPPINGS as DISPLAY_NAMES
from .inputs import v3_inputs, v3_outputs


def _node_output(result):
    """A V1 return value (tuple, or {"ui": ..., "result": tuple}) as a V3 NodeOutput."""
    if isinstance(result, dict):
        return io.NodeOutput(*result.get("result", ()), ui=result.get("ui"))
    return io.NodeOutput(*result)


def v3_node(node_id, v1):
    """The V3 node class standing for the V1 class `v1` under the same node id."""

    class Node(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(
                node_id=node_id, display_name=DISPLAY_NAMES[node_id], category=v1.CATEGORY,
                description=v1.DESCRIPTION, inputs=v3_inputs(v1.INPUT_TYPES()),
                outputs=v3_outputs(v1.RETURN_TYPES, v1.RETURN_NAMES),
                is_output_node=getattr(v1, "OUTPUT_NODE", False))

        @classmethod
        def execute(cls, **inputs):
            return _node_output(getattr(v1(), v1.FUNCTION)(**inputs))

    if hasattr(v1, "VALIDATE_INPUTS"):
        # the same function, so ComfyUI sees the same argument names (it skips its own checks for those)
        Node.validate_inputs = classmethod(v1.VALIDATE_INPUTS.__func__)
    if hasattr(v1, "VRAM_ESTIMATE"):
        Node.VRAM_ESTIMATE = classmethod(lambda cls, inputs, prompt: v1.VRAM_ESTIMATE(inputs, prompt))
    Node.__name__ = Node.__qualname__ = f"{v1.__name__}V3"
    Node.V1_CLASS = v1
    return Node


V3_NODES = [v3_node(node_id, v1) for node_id, v1 in V1_CLASSES.items()]


class DDColorExtension(ComfyExtension):
    async def get_node_list(self):
        return list(V3_NODES)


async def comfy_entrypoint():
    return DDColorExtension()
