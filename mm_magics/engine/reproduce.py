"""Rebuild a version from its record and say whether it comes out the same.

The recorded cell code runs again in a clean namespace holding only the data, against data whose fingerprint must
match the recorded one (checked on the rows the run trained on, before anything is fitted), with the recorded
evaluation (hold-out split, folds or explicit test set). Then the rebuilt model is compared with the stored one on
the version's agreement sample and their metrics side by side; package versions that differ from the recorded ones
are listed, since they are the usual reason a rebuild differs. Nothing is committed unless asked.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .environment import capture_environment
from .errors import MMError
from .fingerprints import fingerprint
from .records import Record
from .training import TrainOptions, train, training_rows

if TYPE_CHECKING:
    from .records import Version
    from .workspace import Workspace


class ReproduceError(MMError):
    """The version cannot be rebuilt as recorded: the message says what differs and what to do."""


@dataclass(repr=False)
class Reproduction(Record):
    """What a rebuild found: same predictions or not, metric differences, package differences, and the commit."""

    version: str
    identical: bool
    agreement: float | None
    agreement_rows: int
    metrics: dict[str, tuple[float | None, float | None]]
    packages: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    same_artifact: bool = False
    committed: str | None = None

    def __str__(self) -> str:
        if self.same_artifact:
            head = "rebuilt byte for byte (same artifact sha256)"
        elif self.identical:
            head = f"rebuilt: predicts identically on {self.agreement_rows} sample rows"
        elif self.agreement is not None:
            head = f"rebuilt, but predicts differently: {self.agreement:.1%} of {self.agreement_rows} sample rows agree"
        else:
            head = "rebuilt (no agreement sample recorded, so predictions were not compared)"
        lines = [f"{self.version}: {head}"]
        changed = {k: ab for k, ab in self.metrics.items() if ab[0] != ab[1]}
        if changed:
            lines.append("  metrics: " + ", ".join(f"{k} {_fmt(a)} -> {_fmt(b)}" for k, (a, b) in changed.items()))
        elif self.metrics:
            lines.append("  metrics: all the same")
        if self.packages:
            diffs = ", ".join(f"{k} {a or '-'} (recorded) vs {b or '-'} (here)" for k, (a, b) in self.packages.items())
            lines.append(f"  packages that differ: {diffs}")
        if self.committed:
            lines.append(f"  committed as {self.committed}")
        return "\n".join(lines)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def reproduce(
    ws: Workspace,
    spec: str,
    data: tuple[Any, Any],
    *,
    test: tuple[Any, Any] | None = None,
    commit: bool = False,
    message: str = "",
) -> Reproduction:
    """Rebuild ``spec`` from its recorded code on ``data`` (X, y; ``test``: the X_test, y_test it was evaluated on)."""
    v = ws.registry.get(spec)
    code, evaluation = _recorded(v)
    X, y = data
    _check_data(v, X, y, evaluation)
    xn, yn = data_names(v)
    ns: dict[str, Any] = {"__builtins__": builtins, xn: X, yn: y}
    if test is not None:
        ns["X_test"], ns["y_test"] = test
    cv = evaluation.get("folds") and len(evaluation["folds"])
    opts = TrainOptions(
        data_vars=(xn, yn),
        cv=int(cv) if cv else None,
        test_size=float(evaluation.get("test_size", 0.25)),
        random_state=int(evaluation.get("random_state", 0)),
        parent=v.id,
    )
    try:
        run = train(v.name, code, ns, opts)
    except NameError as exc:
        raise ReproduceError(
            f"{v.id}'s recorded code uses {exc.name!r}, which a clean namespace does not have: the cell relied on "
            "something defined elsewhere in the notebook, so it cannot be rebuilt from its record alone"
        ) from None
    stored = ws.registry.checkout(v.id)
    sample = ws.registry.probe_data(v.id)
    agreement, rows = None, 0
    if sample is not None:
        same = np.asarray(stored.predict(sample)) == np.asarray(run.model.predict(sample))
        agreement, rows = float(np.mean(same)), len(same)
    names = [k for k, m in v.metrics.items() if isinstance(m, (int, float)) and not isinstance(m, bool)]
    out = Reproduction(
        version=v.id,
        identical=agreement == 1.0,
        agreement=agreement,
        agreement_rows=rows,
        metrics={k: (v.metrics.get(k), run.metrics.get(k)) for k in names},
        packages=_package_differences(v),
    )
    if commit:
        msg = message or f"Reproduction of {v.id}"
        out.committed = ws.registry.commit(v.name, run.model, message=msg, **run.commit_fields()).id
    out.same_artifact = out.committed is not None and ws.registry.get(out.committed).sha256 == v.sha256
    return out


def data_names(v: Version) -> tuple[str, str]:
    """The names the recorded cell read its data from (``X, y`` unless it trained on others)."""
    recorded = str(((v.extra or {}).get("evaluation") or {}).get("data") or "X, y")
    names = [n.strip() for n in recorded.split(",")]
    ok = len(names) == 2 and all(n.isidentifier() for n in names)
    return (names[0], names[1]) if ok else ("X", "y")


def needs_test_set(v: Version) -> bool:
    """Whether the version was evaluated on an explicit X_test / y_test, which a rebuild needs too."""
    return ((v.extra or {}).get("evaluation") or {}).get("test") == "X_test/y_test"


def _recorded(v: Version) -> tuple[str, dict[str, Any]]:
    if not v.code:
        raise ReproduceError(
            f"{v.id} has no recorded code (it was committed from an estimator, not trained by %%mm_train): there is "
            "nothing to re-run"
        )
    evaluation = (v.extra or {}).get("evaluation") or {}
    if not evaluation or not (v.data or {}).get("hash"):
        raise ReproduceError(f"{v.id} has no recorded evaluation or data fingerprint: it cannot be rebuilt as recorded")
    return v.code, evaluation


def _check_data(v: Version, X: Any, y: Any, evaluation: dict[str, Any]) -> None:
    """Refuse data other than the recorded data, before anything is fitted."""
    try:
        X_tr, y_tr = training_rows(X, y, v.task, evaluation)
        found = fingerprint(X_tr, y_tr)
    except Exception as exc:
        raise ReproduceError(f"the data given cannot be used to rebuild {v.id}: {type(exc).__name__}: {exc}") from None
    recorded = v.data
    if found["hash"] != recorded["hash"]:
        shape = f"{found['rows']}x{found['columns']} rows x columns vs {recorded.get('rows')}x{recorded.get('columns')}"
        raise ReproduceError(
            f"this is not the data {v.id} was trained on: its fingerprint is {found['hash'][:12]}, the recorded one "
            f"{str(recorded['hash'])[:12]} ({shape}): pass the original data with --data X y"
        )


def _package_differences(v: Version) -> dict[str, tuple[str | None, str | None]]:
    recorded = (v.environment or {}).get("packages") or {}
    here = capture_environment()["packages"]
    return {
        k: (recorded.get(k), here.get(k)) for k in sorted(set(recorded) | set(here)) if recorded.get(k) != here.get(k)
    }
