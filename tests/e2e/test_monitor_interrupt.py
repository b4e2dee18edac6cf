"""%mm_monitor --refresh on a real kernel: the interrupt button stops the updater, idle or busy."""

from __future__ import annotations

import os
import sys
import time

import pytest
from jupyter_client.manager import start_new_kernel

SETUP = """
%load_ext mm_magics
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True, as_frame=True)
"""


def run(kc, code: str, timeout: float = 120) -> str:
    """Execute ``code``, return its text output; any error in the cell fails the test (unless it is expected)."""
    for _ in range(5):
        reply = kc.execute_interactive(code, timeout=timeout, output_hook=(out := _Collector()))
        # right after an interrupted cell ipykernel aborts what arrives for a moment (stop_on_error): ask again
        if reply["content"]["status"] != "aborted":
            break
        time.sleep(0.3)
    if reply["content"]["status"] != "ok":
        raise AssertionError(f"{code!r} failed: {reply['content'].get('ename')} {reply['content'].get('evalue')}")
    return out.text


class _Collector:
    def __init__(self) -> None:
        self.text = ""

    def __call__(self, msg: dict) -> None:
        content = msg["content"]
        self.text += content.get("text", "") + content.get("data", {}).get("text/plain", "")


def monitor_threads(kc) -> list[str]:
    text = run(
        kc, "import threading; print(sorted(t.name for t in threading.enumerate() if t.name.startswith('mm-monitor')))"
    )
    return eval(text.strip().splitlines()[-1])  # a printed list of str


def wait_until_no_monitor(kc, timeout: float = 10) -> list[str]:
    deadline = time.monotonic() + timeout
    while (names := monitor_threads(kc)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return names


@pytest.fixture
def kernel(tmp_path):
    env = {**os.environ, "MM_HOME": str(tmp_path / ".mm")}
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(tmp_path))
    deployed = False
    try:
        run(kc, SETUP)
        run(kc, "%%mm_train iris --commit -m 'first'\nmodel = LogisticRegression(max_iter=500)")
        run(kc, "%mm_deploy iris")
        deployed = True
        yield km, kc
    finally:
        try:
            if deployed:
                run(kc, "%mm_undeploy iris")
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)


@pytest.mark.skipif(sys.platform == "win32", reason="kernel interrupts are SIGINT on POSIX")
def test_interrupting_an_idle_kernel_stops_the_refreshing_monitor(kernel):
    km, kc = kernel
    run(kc, "%mm_monitor iris --refresh 0.5s --for 10m")
    assert monitor_threads(kc) == ["mm-monitor-iris"]
    km.interrupt_kernel()  # the kernel is idle: ipykernel ignores SIGINT unless we hooked it
    assert wait_until_no_monitor(kc) == []
    run(kc, "%mm_monitor iris --refresh 0.5s")  # and the kernel, the hook and the magic still work
    assert monitor_threads(kc) == ["mm-monitor-iris"]
    km.interrupt_kernel()
    assert wait_until_no_monitor(kc) == []


def test_interrupting_a_running_cell_stops_it_too(kernel):
    km, kc = kernel
    run(kc, "%mm_monitor iris --refresh 0.5s")
    msg_id = kc.execute("import time; time.sleep(60)")
    time.sleep(1.0)
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=30)
    assert reply["parent_header"]["msg_id"] == msg_id and reply["content"]["ename"] == "KeyboardInterrupt"
    assert wait_until_no_monitor(kc) == []


def test_rerunning_the_magic_replaces_the_updater(kernel):
    _, kc = kernel
    run(kc, "%mm_monitor iris --refresh 0.5s")
    run(kc, "%mm_monitor iris --refresh 0.5s")
    assert monitor_threads(kc) == ["mm-monitor-iris"]
    run(kc, "%mm_monitor iris --stop")
    assert wait_until_no_monitor(kc) == []


def test_a_refreshing_panel_says_it_is_live_and_when_and_why_it_stopped(kernel):
    """After --for ends the panel looked exactly like a live one; now it says stopped, since when and why."""
    _, kc = kernel
    run(kc, "%config MMMagics.widgets = False")  # the HTML panel (a front end without widgets)
    kc.execute("%mm_monitor iris --refresh 0.5s --for 2s")
    texts: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(t.startswith("■ stopped") for t in texts):
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except Exception:
            continue
        if msg["msg_type"] in ("display_data", "update_display_data"):
            texts.append(msg["content"]["data"].get("text/plain", ""))
    assert texts[0].startswith("● live — refreshing every 0.5s until"), texts[:1]
    final = texts[-1]
    assert final.startswith("■ stopped — at ") and "--for 2s elapsed" in final, final[:200]
    assert wait_until_no_monitor(kc) == []


def comm_messages(kc, until, timeout: float = 30) -> list[dict]:
    """Widget messages on iopub (comm_open, comm_msg) until ``until(messages)`` holds."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(seen):
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except Exception:
            continue
        if msg["msg_type"] in ("comm_open", "comm_msg"):
            seen.append(msg["content"]["data"])
    return seen


def _state(data: dict) -> str:
    return data.get("state", {}).get("state", "") if isinstance(data.get("state"), dict) else ""


def test_the_sparklines_widget_gets_only_new_points_and_says_when_it_stopped(kernel):
    """With a widget front end the monitor is the sparklines widget: each tick sends the new buckets only (comm
    messages, never the whole window again); when --for ends, its state says stopped, since when and why."""
    _, kc = kernel
    kc.execute("%mm_monitor iris --refresh 0.5s --for 3s")
    seen = comm_messages(kc, lambda ms: any(_state(m).startswith("■ stopped") for m in ms))
    opened = next(m for m in seen if m.get("state", {}).get("_esm"))
    assert opened["state"]["series"]["name"] == "iris" and opened["state"]["live"] is False
    points = [m["content"] for m in seen if m.get("method") == "custom" and m["content"]["kind"] == "points"]
    assert points and all(len(p["t"]) <= 2 for p in points)  # a tick's worth each, not the window
    states = [_state(m) for m in seen if _state(m)]
    assert states[0].startswith("● live — refreshing every 0.5s until")
    assert states[-1].startswith("■ stopped — at ") and "--for 3s elapsed" in states[-1]
    assert wait_until_no_monitor(kc) == []


def test_closing_the_sparklines_widget_stops_its_updater(kernel):
    _, kc = kernel
    run(kc, "%mm_monitor iris --refresh 0.5s --for 10m")
    assert monitor_threads(kc) == ["mm-monitor-iris"]
    run(
        kc,
        "from mm_magics.widgets.sparklines import Sparklines\n"
        "from ipywidgets import Widget\n"
        "[w.close() for w in list(Widget.widgets.values()) if isinstance(w, Sparklines)]",
    )
    assert wait_until_no_monitor(kc) == []


def test_the_magic_returns_data_and_displaying_it_shows_the_sparklines(kernel):
    """``snap = %mm_monitor iris`` is the engine's snapshot (its alerts, its numbers); shown, it is the widget."""
    _, kc = kernel
    out = run(kc, "snap = %mm_monitor iris\nprint(type(snap).__name__, snap.name, snap.version)")
    assert "Snapshot iris iris@v1" in out
    kc.execute("snap")
    seen = comm_messages(kc, lambda ms: any(m.get("state", {}).get("series") for m in ms))
    opened = next(m for m in seen if m.get("state", {}).get("series"))
    assert opened["state"]["series"]["name"] == "iris" and opened["state"]["poll_s"] == 0
