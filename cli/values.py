"""Values of widget inputs: checked and converted to the type an input declares."""
from __future__ import annotations

from typing import Any

from ..models.errors import MultiTalkError
from .native_specs import FILE_TYPE, is_widget
from .registry import input_options

_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


class WorkflowError(MultiTalkError):
    """A workflow, a --set override or a node type the command line cannot run."""


def is_link(value: Any) -> bool:
    """API-format links are [source node id (str), output slot (int)]."""
    return (isinstance(value, (list, tuple)) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], int) and not isinstance(value[1], bool))


def coerce(value: Any, spec: tuple, where: str) -> Any:
    """`value` as the declared type of `spec` (text from the command line or a JSON literal).

    Raises WorkflowError naming `where` (e.g. "node 12 'Sampler' input steps") and the value."""
    kind, options = spec[0], input_options(spec)
    if not is_widget(kind):
        raise WorkflowError(f"{where} is a {kind} input: it takes a link from another node, not the value {value!r}.")
    if isinstance(kind, (list, tuple)):
        return _choice(value, list(kind), where)
    if str(kind).startswith(FILE_TYPE):
        return _text(value, where)
    converted = {"INT": _int, "FLOAT": _float, "BOOLEAN": _bool, "STRING": _text}[kind](value, where)
    if kind in ("INT", "FLOAT"):
        _check_range(converted, options, where)
    return converted


def _choice(value: Any, choices: list, where: str) -> Any:
    if value in choices:
        return value
    text = str(value)
    for choice in choices:
        if str(choice) == text:
            return choice
    raise WorkflowError(f"{where} is {value!r}, which is not one of its choices: {', '.join(map(str, choices))}.")


def _text(value: Any, where: str) -> str:
    if isinstance(value, (dict, list)):
        raise WorkflowError(f"{where} needs text, got {value!r}.")
    return str(value)


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise WorkflowError(f"{where} needs a whole number, got {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise WorkflowError(f"{where} needs a whole number, got {value!r}.") from None
    if not number.is_integer():
        raise WorkflowError(f"{where} needs a whole number, got {value!r}.")
    return int(value) if isinstance(value, int) or str(value).strip().lstrip("+-").isdigit() else int(number)


def _float(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise WorkflowError(f"{where} needs a number, got {value!r}.")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise WorkflowError(f"{where} needs a number, got {value!r}.") from None


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise WorkflowError(f"{where} needs true or false, got {value!r}.")


def _check_range(number: float, options: dict, where: str) -> None:
    low, high = options.get("min"), options.get("max")
    if (low is not None and number < low) or (high is not None and number > high):
        allowed = f"{low}..{high}" if low is not None and high is not None else (
            f">= {low}" if low is not None else f"<= {high}")
        raise WorkflowError(f"{where} is {number}, outside its range {allowed}.")
