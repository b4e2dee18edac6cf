"""Parity between the faces: every engine record renders as text and HTML, every magic has its ``mm`` verb (or says
why it cannot), and user text is escaped wherever HTML is built from it."""

from __future__ import annotations

import argparse
import importlib
import pkgutil

import pytest

import mm_magics.engine
from mm_magics.cli import build_parser
from mm_magics.engine.records import Record
from mm_magics.magics import NOTEBOOK_ONLY, MMMagics
from mm_magics.render import rendered_types, to_html


def _engine_records() -> list[type]:
    for mod in pkgutil.walk_packages(mm_magics.engine.__path__, "mm_magics.engine."):
        importlib.import_module(mod.name)
    out, todo = [], list(Record.__subclasses__())
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo += cls.__subclasses__()
    return out


def test_every_engine_record_has_text_and_html():
    registered = set(rendered_types())
    missing = [
        f"{c.__module__}.{c.__qualname__}"
        for c in _engine_records()
        if (c.__module__, c.__qualname__) not in registered
    ]
    assert not missing, f"records without an HTML renderer in mm_magics.render: {missing}"
    for cls in _engine_records():
        assert cls.__str__ is not object.__str__, f"{cls.__qualname__} has no readable text"


def test_every_magic_has_its_mm_verb_or_says_why_not():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    verbs = set(sub.choices)
    magics = set(MMMagics.magics["line"]) | set(MMMagics.magics["cell"])
    without = sorted(m for m in magics if m.removeprefix("mm_") not in verbs and m not in NOTEBOOK_ONLY)
    assert not without, f"magics with no mm verb and no reason in NOTEBOOK_ONLY: {without}"
    assert set(NOTEBOOK_ONLY) <= magics, "NOTEBOOK_ONLY names a magic that does not exist"


@pytest.mark.parametrize("evil", ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "a & b < c"])
def test_user_text_is_escaped_in_html(ws, models, evil):
    """A commit message, an alias or a code cell can hold markup; rendered, it must read as text, never run."""
    v = ws.registry.commit("m", models["logreg"], message=evil, code="x = 1", metrics={"accuracy": 0.9})
    ws.registry.commit("m", models["tree"], message="two", code=evil, metrics={"accuracy": 0.8})
    for record in (v, ws.registry.log("m"), ws.registry.diff("m@v1", "m@v2", agreement=False)):
        html = to_html(record)
        assert "<script" not in html and "<img" not in html, (type(record).__name__, html[html.find("<script") - 200 :])
        assert "&lt;" in html or "&amp;" in html, type(record).__name__


def test_a_verb_shared_by_both_faces_has_one_set_of_arguments_and_help():
    """Declared once in mm_magics.verbs: the magic's parser and mm's subparser carry the same options and help."""
    from mm_magics import verbs

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, spec in verbs.VERBS.items():
        magic = getattr(MMMagics, f"mm_{name}", None)
        if magic is None or name not in sub.choices:
            continue
        cli, nb = sub.choices[name], getattr(magic, "parser", None)
        assert cli.description == spec.help
        if nb is None:
            assert not spec.args, f"%mm_{name} takes no arguments but the verb declares some"
            continue
        shared = [a for a in spec.args if a.faces == ("magic", "cli")]
        for a in shared:
            helps = {
                p: next(x.help for x in p._actions if a.flags[0] in (x.option_strings or [x.dest])) for p in (cli, nb)
            }
            assert helps[cli] == helps[nb] == a.kwargs.get("help"), (name, a.flags)


def test_completion_covers_every_magic_that_takes_a_version():
    from mm_magics import verbs
    from mm_magics.magics import VERSION_MAGICS

    assert verbs.completing() == VERSION_MAGICS
    assert {"%mm_deploy", "%mm_diff", "%%mm_train", "%mm_rollback"} <= set(VERSION_MAGICS)
