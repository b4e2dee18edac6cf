"""What a browser does to a widget, without a browser: custom messages go in through the widget's own comm
handler (the path a front end's message takes in the kernel), and what the widget sends back is collected."""

from __future__ import annotations

import json
from typing import Any

import pytest


class Front:
    """The front end of one widget: ``say`` a message, get back the custom messages the widget answered with."""

    def __init__(self, widget: Any) -> None:
        self.widget = widget
        self.sent: list[dict[str, Any]] = []
        widget.comm.send = lambda data=None, buffers=None, **_: self.sent.append(data)

    def say(self, content: dict[str, Any]) -> list[dict[str, Any]]:
        self.sent.clear()
        self.widget._handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})
        return self.custom()

    def custom(self) -> list[dict[str, Any]]:
        return [m["content"] for m in self.sent if m.get("method") == "custom"]

    def bytes_sent(self) -> int:
        return sum(len(json.dumps(m, separators=(",", ":"))) for m in self.sent)


@pytest.fixture
def front():
    return Front
