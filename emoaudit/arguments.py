"""Arguments of the Python API and the command line, checked at the boundary before any model work: the
stages an audit runs and a steering strength. A wrong type raises ValueError, a bad value EmoauditError; the
CLI prints either's message as its one error line."""

from __future__ import annotations

import math
from collections.abc import Sequence

from emoaudit.errors import EmoauditError

# |strength| in units of the layer's mean residual norm. The audit's own sweep reaches 32 (default.toml:
# the largest probe strength 8 × the largest multiplier 4); at 100 the added vector is 100 times a typical
# residual, which is then more than 99% the vector: past it a model writes nothing a reader could judge,
# and in float16 the residual of a large model overflows.
MAX_STRENGTH = 100.0


def check_strength(strength: object, name: str = "strength") -> float:
    """`strength` as a float. ValueError unless it is a real number (bool excluded); EmoauditError when it is
    not finite or above `MAX_STRENGTH` in magnitude."""
    if isinstance(strength, bool) or not isinstance(strength, int | float):
        raise ValueError(f"{name} must be a number, not {type(strength).__name__}")
    value = float(strength)
    if not math.isfinite(value):
        raise EmoauditError(f"{name} {value}: a strength must be a finite number")
    if abs(value) > MAX_STRENGTH:
        raise EmoauditError(
            f"{name} {value:g}: at most {MAX_STRENGTH:g} in magnitude (times the layer's mean residual norm; "
            "the audit's calibrated range is far below it)"
        )
    return value


def check_stages(stages: object, order: Sequence[str]) -> tuple[str, ...]:
    """The stages to run, in `order`. ValueError unless a sequence of names (a bare string is one name
    spelled out, not a sequence); EmoauditError for an unknown stage, none, or a stage without the ones
    before it, whose results it reads (leakage reads steering's texts, steering extraction's vectors)."""
    if isinstance(stages, str) or not isinstance(stages, Sequence | set | frozenset):
        raise ValueError(f"stages must be a sequence of stage names, not {type(stages).__name__}")
    if not all(isinstance(s, str) for s in stages):
        raise ValueError("stages must be stage names (strings)")
    unknown = [s for s in stages if s not in order]
    if unknown:
        raise EmoauditError(f"unknown stage {unknown[0]!r}; the stages are {', '.join(order)}")
    if not stages:
        raise EmoauditError(f"no stage to run; the stages are {', '.join(order)}")
    last = max(order.index(s) for s in stages)
    missing = [s for s in order[:last] if s not in stages]
    if missing:
        raise EmoauditError(
            f"stage {order[last]!r} needs {' and '.join(repr(s) for s in missing)} before it (it reads their "
            f"results): ask for {', '.join(order[: last + 1])}"
        )
    return tuple(s for s in order if s in stages)
