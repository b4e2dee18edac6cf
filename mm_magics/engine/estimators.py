"""What can be versioned: a fitted scikit-learn-style estimator, and the task it solves."""

from __future__ import annotations

from typing import Any

from .errors import ModelError


def check_model(model: Any) -> None:
    """Refuse anything that is not a fitted scikit-learn-style estimator, with the fix in the message."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    kind = type(model).__name__
    if not (hasattr(model, "fit") and (hasattr(model, "predict") or hasattr(model, "transform"))):
        raise ModelError(
            f"{kind} is not a scikit-learn estimator (it needs fit and predict): pass a fitted estimator or pipeline"
        )
    try:
        check_is_fitted(model)
    except NotFittedError:
        raise ModelError(f"{kind} is not fitted: call .fit(X, y) on it first (or train it through mm_magics)") from None
    except TypeError as exc:
        raise ModelError(f"{kind} is not a scikit-learn estimator ({exc}): pass a fitted estimator") from None


def task_of(model: Any) -> str | None:
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(model):
        return "classification"
    if is_regressor(model):
        return "regression"
    return None
