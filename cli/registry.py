"""One view of every node type a workflow may name: the pack's classes and ComfyUI's core
nodes (specs, plus command-line stand-ins for those that run outside ComfyUI)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

from .native_specs import NATIVE_SPECS, is_widget


@dataclass(frozen=True)
class NodeSpec:
    class_type: str
    inputs: dict  # {"required": {...}, "optional": {...}} as INPUT_TYPES() returns it
    outputs: tuple[str, ...]
    output_names: tuple[str, ...]
    output_node: bool
    native: bool
    ui_extra_widgets: tuple = ()
    factory: Optional[Callable[[], Any]] = None  # makes an instance to run; None: runs in ComfyUI only

    def input_items(self) -> Iterator[tuple[str, tuple, bool]]:
        """(name, (type, options...), required) in declaration order: required first."""
        for section in ("required", "optional"):
            for name, spec in self.inputs.get(section, {}).items():
                yield name, spec if isinstance(spec, tuple) else (spec,), section == "required"

    def input_spec(self, name: str) -> Optional[tuple]:
        return next((spec for item, spec, _ in self.input_items() if item == name), None)

    def widget_names(self) -> list[str]:
        return [name for name, spec, _ in self.input_items() if is_widget(spec[0])]


def input_options(spec: tuple) -> dict:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


class NodeRegistry:
    """Node specs by class_type: `classes` (default: the pack's NODE_CLASS_MAPPINGS) and ComfyUI's
    core nodes, with `natives` mapping core class_types to factories of runnable stand-ins."""

    def __init__(self, natives: Optional[dict[str, Callable[[], Any]]] = None, classes: Optional[dict] = None):
        if classes is None:
            from ..nodes import NODE_CLASS_MAPPINGS as classes
        self._pack = dict(classes)
        self._natives = natives or {}

    def __contains__(self, class_type: str) -> bool:
        return class_type in self._pack or class_type in NATIVE_SPECS

    def spec(self, class_type: str) -> NodeSpec:
        if class_type in self._pack:
            cls = self._pack[class_type]
            return NodeSpec(class_type, cls.INPUT_TYPES(), tuple(cls.RETURN_TYPES),
                            tuple(getattr(cls, "RETURN_NAMES", None) or cls.RETURN_TYPES),
                            bool(getattr(cls, "OUTPUT_NODE", False)), False, factory=cls)
        if class_type in NATIVE_SPECS:
            native = NATIVE_SPECS[class_type]
            factory = self._natives.get(class_type) if native.runs_outside_comfyui else None
            return NodeSpec(class_type, native.inputs, native.outputs, native.output_names, native.output_node,
                            True, native.ui_extra_widgets, factory)
        raise KeyError(class_type)
