"""V3 inputs and outputs (comfy_api.latest.io) from the declarative specs of nodes/specs.py.

Each spec entry `name: (type, {options})` becomes the typed V3 input of that type, with the same
name, default, bounds and tooltip, so /object_info shows the same inputs in both schemas. An option
this converter does not know is an error at import, never silently dropped.
"""
from comfy_api.latest import io

SCALARS = {"INT": io.Int, "FLOAT": io.Float, "BOOLEAN": io.Boolean, "STRING": io.String}
SCALAR_OPTIONS = {"default", "min", "max", "step"}


class Choice(io.Combo.Input):
    """A combo whose type is its list of choices, as in V1. ComfyUI 0.3.75 checks a submitted value
    against the choices only when the type is that list (execution.validate_inputs); with the plain
    "COMBO" type any value would reach the node."""

    def get_io_type(self):
        return list(self.options)


def _spec_error(name, kind, unknown):
    return ValueError(f"nodes/specs.py: input {name!r} ({kind}) has options the V3 schema converter does not "
                      f"know: {sorted(unknown)}; add them to nodes/v3/inputs.py")


def v3_input(name, decl, optional):
    kind = decl[0]
    options = dict(decl[1]) if len(decl) > 1 else {}
    tooltip = options.pop("tooltip", None)
    if isinstance(kind, (list, tuple)):
        default = options.pop("default", None)
        if options:
            raise _spec_error(name, "choice", options)
        return Choice(name, options=list(kind), default=default, tooltip=tooltip, optional=optional)
    if kind in SCALARS:
        if set(options) - SCALAR_OPTIONS:
            raise _spec_error(name, kind, set(options) - SCALAR_OPTIONS)
        return SCALARS[kind].Input(name, tooltip=tooltip, optional=optional, **options)
    if options:
        raise _spec_error(name, kind, options)
    known = {"IMAGE": io.Image, "MASK": io.Mask}.get(kind) or io.Custom(kind)
    return known.Input(name, tooltip=tooltip, optional=optional)


def v3_inputs(spec):
    """The V3 inputs of a V1 INPUT_TYPES dict, required first, in the spec's order."""
    return [v3_input(name, decl, section == "optional")
            for section in ("required", "optional")
            for name, decl in spec.get(section, {}).items()]


def v3_outputs(types, names):
    """V3 outputs named as the V1 RETURN_NAMES (the display name); their ids get a suffix because V3
    wants ids apart from the input ids (DDColorColorize has an `image` input and an `image` output)."""
    known = {"IMAGE": io.Image, "MASK": io.Mask, "STRING": io.String}
    return [(known.get(kind) or io.Custom(kind)).Output(id=f"{name}_out", display_name=name)
            for kind, name in zip(types, names)]
