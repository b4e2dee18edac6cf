"""The lifecycle: %mm_stage, %mm_alias, %mm_gate.

A mixin of :class:`mm_magics.magics.MMMagics` (one configurable, so ``%config MMMagics.*`` keeps working),
as IPython splits its own magics by topic; each magic parses its line, calls one engine verb, returns a record."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from IPython.core.magic import line_magic

from ..engine.records import GateList
from ..engine.specs import parse_spec

if TYPE_CHECKING:
    pass

# Everything heavy (scikit-learn, skops, pandas, git) is imported inside the magics that need it, so that
# `%load_ext mm_magics` stays instant and a notebook that never trains pays nothing.


from .common import friendly, parse_args, verb_arguments


class LifecycleMagics:
    """The lifecycle magics (mixed into MMMagics)."""

    @verb_arguments("lifecycle")
    @line_magic
    @friendly
    def mm_lifecycle(self, line: str) -> Any:
        """A model's lifecycle graph: versions per stage, the gates on each edge, and for NAME@vN its stage, its path
        so far and every next move marked allowed or refused (with the gate and by how much). Interactive where a
        widget front end runs (click a stage for its versions); a picture everywhere else."""
        args = parse_args(self.mm_lifecycle, line)
        return self._widget_or(self.ws.lifecycle.picture(args.spec))

    @verb_arguments("stage")
    @line_magic
    @friendly
    def mm_stage(self, line: str) -> Any:
        """Move a version through its lifecycle, passing the gates of every stage it enters (no stage: its history)."""
        args = parse_args(self.mm_stage, line)
        lc = self.ws.lifecycle
        if args.stage is None:
            return lc.history(args.version)
        if args.check:
            results = lc.check(args.version, args.stage)
            return GateList(name=self.ws.registry.get(args.version).id, stage=args.stage, gates=[], results=results)
        return lc.transition(args.version, args.stage, args.message, force=args.force)

    @verb_arguments("alias")
    @line_magic
    @friendly
    def mm_alias(self, line: str) -> Any:
        """Point an alias such as production at a version (audited), or delete it."""
        args = parse_args(self.mm_alias, line)
        reg = self.ws.registry
        if args.delete:
            return reg.delete_alias(parse_spec(args.version).name, args.alias, args.message)
        return reg.set_alias(args.version, args.alias, args.message)

    @verb_arguments("gate")
    @line_magic
    @friendly
    def mm_gate(self, line: str) -> Any:
        """Set (or show) the metric thresholds a version must meet to enter a stage."""
        args = parse_args(self.mm_gate, line)
        lc = self.ws.lifecycle
        if args.exprs or args.replace:
            gates = lc.set_gates(args.name, args.exprs, stage=args.stage, replace=args.replace)
        else:
            gates = lc.gates(args.name)
        return GateList(name=args.name, stage=args.stage, gates=gates, results=[])
