"""Typer options generated from the one options table (`emoaudit.options`): every command that loads a
model takes its model options from here, so that no command can drift from another."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any, TypeVar, cast

import typer

from emoaudit.options import Option

F = TypeVar("F", bound=Callable[..., Any])


def choices(option: Option) -> type[Enum] | None:
    """The choices of `option` as the str Enum Typer turns into a choice, None for an open value."""
    if option.choices is None:
        return None
    return Enum(option.name.title().replace("_", ""), {c: c for c in option.choices}, type=str)  # type: ignore[return-value]


def typer_parameter(option: Option) -> inspect.Parameter:
    """`option` as a keyword parameter Typer reads: its type (optional where the default is None), flags,
    help and default (an Enum member where it has choices)."""
    enum = choices(option)
    kind: Any = enum or option.type
    if option.default is None:
        kind = kind | None
    flags = [option.cli_flag] if option.flag or option.switch else []
    default = enum(option.default) if enum is not None and option.default is not None else option.default
    annotation = Annotated[kind, typer.Option(*flags, help=option.help)]
    return inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def with_options(*options: Option) -> Callable[[F], F]:
    """Give a command the options of the table after its own parameters; it receives them as keywords
    (`**options`), with the values Typer parsed (checked against the table by `pipeline.options`)."""
    names = [option.name for option in options]

    def decorate(command: F) -> F:
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.kind is not p.VAR_KEYWORD]
        clash = {p.name for p in own} & set(names)
        assert not clash, f"{command.__name__} declares table options itself: {clash}"
        table = [typer_parameter(o) for o in options]

        @functools.wraps(command)
        def run(**values: Any) -> Any:
            plain = {k: v.value if isinstance(v, Enum) and k in names else v for k, v in values.items()}
            return command(**plain)

        parameters = [*own, *table]
        # Typer reads the signature (inspect honours __signature__) and the annotations.
        run.__dict__["__signature__"] = inspect.Signature(parameters)
        run.__annotations__ = {p.name: p.annotation for p in parameters}
        return cast(F, run)

    return decorate
