"""Tab completion of model names, versions and aliases after a magic, the way a front end asks for it.

A front end sends the whole cell and the cursor position (Jupyter's ``complete_request``). IPython splits the token
under the cursor at ``@`` (a Python operator), so a completer that only sees IPython's token receives an empty word
after ``NAME@`` and its answers are drowned by Python builtins. This matcher (IPython's Matcher API v2) reads the
magic's line up to the cursor itself, says which fragment it replaces (``matched_fragment``, e.g. ``iris@v``), and
suppresses every other matcher on a line it owns, so ``%mm_diff iris@`` + Tab offers ``iris@v2``, ``iris@production``
and nothing else.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from typing import Any

from IPython.core.completer import CompletionContext, SimpleCompletion, context_matcher

_LINE = re.compile(r"^\s*(%{1,2})(mm_\w+)(?:\s+(.*))?$", re.DOTALL)
#: Options whose value is a version (the parent a run or version derives from): completed like a positional.
_VERSION_OPTIONS = {"--from"}


def word_to_complete(text_until_cursor: str, magics: dict[str, dict[str, bool]]) -> tuple[str, str] | None:
    """``(magic, fragment)`` when the cursor sits on a NAME/NAME@vN argument or an option of one of ``magics``
    (magic -> {option flag: whether it takes a value}), else None.

    None leaves the line to IPython's other matchers: not one of our magics, an option's free-text value
    (``-m "…``), or a still-open quote."""
    match = _LINE.match(text_until_cursor)
    magic = f"{match.group(1)}{match.group(2)}" if match else ""
    if match is None or magic not in magics:
        return None
    args = match.group(3) or ""
    if not args and not text_until_cursor.endswith((" ", "\t")):
        return None  # the cursor is still on the magic's own name
    try:
        tokens = shlex.split(args)
    except ValueError:
        return None  # inside an open quote: a message, not a version
    word = "" if not args or args[-1].isspace() else (tokens[-1] if tokens else "")
    before = tokens if word == "" else tokens[:-1]
    if before and before[-1].startswith("-") and before[-1] not in _VERSION_OPTIONS and not word.startswith("-"):
        if magics[magic].get(before[-1]) is False:
            return magic, word  # a switch such as --docker: the next word is an argument again
        return None  # the value of an option such as -m, --port, --window
    return magic, word


def version_matcher(candidates: Callable[[str], list[str]], magics: dict[str, dict[str, bool]]) -> Any:
    """An IPython v2 matcher: model names and versions for an argument (``candidates(word)``), the magic's own
    options for a word starting with ``-``, and nothing else on a line it owns."""

    @context_matcher()
    def mm_versions(context: CompletionContext) -> dict[str, Any]:
        found = word_to_complete(context.text_until_cursor, magics)
        if found is None:
            return {"completions": [], "suppress": False}
        magic, word = found
        if word.startswith("-"):
            completions = [SimpleCompletion(text=f, type="option") for f in magics[magic] if f.startswith(word)]
        else:
            completions = [SimpleCompletion(text=c, type="model") for c in candidates(word)]
        return {"completions": completions, "matched_fragment": word, "suppress": True}

    return mm_versions
