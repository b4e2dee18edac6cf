"""What every magic shares: one-line errors, arguments declared in :mod:`mm_magics.verbs`, line parsing."""

from __future__ import annotations

import argparse
import functools
import inspect
import re
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import MagicArgumentParser

from .. import verbs
from ..engine.errors import MMError, magic_spelling

if TYPE_CHECKING:
    pass

# Everything heavy (scikit-learn, skops, pandas, git) is imported inside the magics that need it, so that
# `%load_ext mm_magics` stays instant and a notebook that never trains pays nothing.


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn engine errors into one-line UsageErrors: the user sees what to fix, never our traceback."""

    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except MMError as exc:
            raise UsageError(exc.render(magic_spelling)) from None  # advice in this face's words

    return wrapper


def verb_arguments(verb: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a magic the arguments :data:`verbs.VERBS` declares for it (the ones ``mm`` gets too), and a help text
    that opens with its usage line and then the docstring (``%mm_log?``)."""

    def deco(func: Callable[..., Any]) -> Callable[..., Any]:
        prefix = "%%" if verb == "train" else "%"
        parser = MagicArgumentParser(
            prog=f"{prefix}mm_{verb}",
            description=inspect.cleandoc(func.__doc__ or verbs.VERBS[verb].help),
            epilog=verbs.examples(verb, "magic", f"{prefix}mm_{verb}"),
            formatter_class=argparse.RawDescriptionHelpFormatter,
            add_help=False,
        )
        verbs.apply(parser, verb, "magic")
        func.parser = parser  # type: ignore[attr-defined]
        func.__doc__ = parser.format_help()
        return func

    return deco


def parse_args(fn: Callable[..., Any], line: str) -> Any:
    """Parse like a shell (quotes group words and are removed), as users expect from -m "a message"."""
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"cannot parse arguments ({exc}): check the quotes") from None
    try:
        return fn.parser.parse_args(argv)
    except UsageError as exc:
        raise UsageError(f"{friendlier(str(exc))} — usage: {usage_line(fn.parser)} (more: %{fn.__name__}?)") from None


def friendlier(message: str) -> str:
    """argparse's words for a missing argument name its metavar ("required: B"); say what is missing instead."""
    missing = re.match(r"the following arguments are required: (.*)", message)
    if missing:
        return "missing " + " and ".join(m.strip() for m in missing.group(1).split(","))
    return message.replace("\n", " ")


def usage_line(parser: argparse.ArgumentParser) -> str:
    return " ".join(parser.format_usage().removeprefix("usage: ").split())


def as_list(value: Any) -> list[Any]:
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return [v.item() if hasattr(v, "item") else v for v in value]
    return [value]


def cell_line(exc: BaseException) -> str:
    """ " at line N" of the user's cell where the exception started, if it started there."""
    tb, line = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == CELL_FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" at line {line}" if line else ""


CELL_FILENAME = "<mm_train cell>"
