"""The steward process's entry point (``python -m mm_magics.engine.serving.steward_main``): open the workspace, then
watch one release until the promotion rule decides it (:mod:`.steward`). An entry point like the server's, so it is
the one serving module that opens a workspace."""

from __future__ import annotations

import argparse
import signal
import sys
import time

from ..workspace import Workspace
from .steward import EVERY_S, watch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mm-steward", description="Promote or abort a release when its rule says.")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--every", type=float, default=EVERY_S)
    args = parser.parse_args(argv)

    def say(text: str) -> None:
        print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {args.name}: {text}", flush=True)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ws = Workspace.open(args.workspace, create=False)
    say(f"watching the release of {args.version} every {args.every:g}s")
    try:
        say(watch(ws.deployments, args.name, args.version, args.every, say))
    finally:
        ws.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
