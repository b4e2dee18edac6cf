"""HTML for engine records in notebooks: a face, attached to the records from outside.

The engine never imports this package. :func:`register` hands every record type to IPython's HTML formatter with
``for_type_by_name`` (module and class name, so nothing is imported until such a record is displayed); the magics
call it at ``%load_ext``. Pure string building with escaping everywhere and inline, theme-aware styles (see
:mod:`.core`); each renderer is small and keyed by the record's own class (module and qualified name, so two classes
of one name never meet). Text and HTML say the same things: every record's ``__str__`` is its plain-text face.
"""

from __future__ import annotations

from . import lifecycle, serving, versions  # noqa: F401  (each module registers its renderers)
from .core import register, rendered_types, to_html, unregister

__all__ = ["register", "rendered_types", "to_html", "unregister"]
