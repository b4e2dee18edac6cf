"""A user-defined estimator: the kind of type skops must not load until someone trusts it."""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


class ClipTransformer(TransformerMixin, BaseEstimator):
    def __init__(self, upper: float = 5.0) -> None:
        self.upper = upper

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):
        return np.minimum(np.asarray(X, dtype=float), self.upper)
