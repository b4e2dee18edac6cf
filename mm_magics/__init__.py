"""mm_magics: train, version, deploy, monitor and roll back a model without leaving the notebook.

Importing this package is cheap and pulls in no IPython, ipywidgets or Jupyter module: the notebook face is loaded
only when IPython calls :func:`load_ipython_extension` (``%load_ext mm_magics``).
"""

from __future__ import annotations

from typing import Any

from ._version import __version__

__all__ = ["__version__", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    from .magics import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from .magics import unload

    unload(ipython)
