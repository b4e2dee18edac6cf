"""The Jupyter server extension: a REST API over the engine under ``/mm/api/``, for the JupyterLab Models panel.

A face like the magics and ``mm``: each handler parses its request, makes one engine call off the event loop and
answers JSON; engine errors are 4xx JSON carrying the engine's one-line message. Enabled on install through
``jupyter-config/jupyter_server_config.d/mm_magics.json``; ``jupyter server extension list`` shows it.
"""

from __future__ import annotations

from typing import Any

from .._version import __version__


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "mm_magics.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from .handlers import setup_handlers

    setup_handlers(serverapp)
    serverapp.log.info(f"mm_magics {__version__}: REST API under /mm/api/")


# the names older jupyter_server versions look for
load_jupyter_server_extension = _load_jupyter_server_extension
