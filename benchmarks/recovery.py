"""How long the registry takes to recover from a writer killed mid-commit.

Two parts, both against a baseline taken in the same run (the machine is shared: only ratios mean anything):

* **crash states**: what a writer killed inside ``git update-ref`` leaves behind, set up exactly — ``HEAD.lock``, the
  branch's lock, a tag's lock with the branch already published and the tag lost. The next commit (in this warm
  process) is timed against a clean commit, and we check the lost tag is back after it, not only after a read.
* **random kills**: real writer processes SIGKILLed with their process group (so a ``git update-ref`` child dies
  too) at random moments; the next commit after each is timed, and lock files and lost tags are counted.

    python benchmarks/recovery.py [--kills 20] [--repeat 10]

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bench import make_log, median, now_iso, rnd
from sklearn.linear_model import LogisticRegression

from mm_magics.engine import Workspace

log = make_log("recovery")

WRITER = """
import sys
from sklearn.linear_model import LogisticRegression
from mm_magics.engine import Workspace
ws = Workspace.open(sys.argv[1])
model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
ws.registry.commit("k", model, message="warm")
print("ready", flush=True)
sys.stdin.readline()
while True:
    ws.registry.commit("k", model, message="loop")
"""

MODEL = LogisticRegression().fit([[0.0], [1.0]], [0, 1])


def timed_commit(ws: Workspace) -> float:
    t0 = time.perf_counter()
    ws.registry.commit("k", MODEL, message="timed")
    return time.perf_counter() - t0


def missing_tags(ws: Workspace) -> int:
    """Versions of ``k`` without their tag, read from git directly (a registry read would re-create them)."""
    tags = ws.git.tags()
    raw = ws.git.read(ws.git.commit_tree(ws.git.read_ref()), "models/k/model.json")
    latest = json.loads(raw)["latest"] if raw else 0
    return sum(1 for n in range(1, latest + 1) if f"refs/tags/k@v{n}" not in tags)


def lose_last_tag(ws: Workspace) -> None:
    """The state a kill between git's lock renames leaves: the branch renamed into place, the new tag still a lock
    file, and HEAD's lock (held for its reflog until the transaction ends) not yet removed."""
    latest = ws.registry.get("k").number
    ref = f"refs/tags/k@v{latest}"
    sha = ws.git.read_ref(ref)
    ws.git.delete_refs([ref])
    (ws.git.git_dir / f"{ref}.lock").write_text(f"{sha}\n")
    (ws.git.git_dir / "HEAD.lock").write_text("ref: refs/heads/main\n")


def crash_states(root: Path, repeat: int) -> dict[str, object]:
    ws = Workspace.open(root)
    ws.registry.commit("k", MODEL, message="warm")
    states = {
        "HEAD.lock": lambda: (ws.git.git_dir / "HEAD.lock").write_text("x\n"),
        "branch lock": lambda: (ws.git.git_dir / "refs/heads/main.lock").write_text("x\n"),
        "tag lost with its lock": lambda: lose_last_tag(ws),
    }
    out: dict[str, object] = {}
    for name, make in states.items():
        clean, after, back = [], [], 0
        for _ in range(repeat):
            clean.append(timed_commit(ws))
            make()
            after.append(timed_commit(ws))
            back += missing_tags(ws) == 0
        out[name] = {
            "clean_commit_ms": rnd(median(clean) * 1000, 2),
            "next_commit_ms": rnd(median(after) * 1000, 2),
            "next_commit_ratio": rnd(median(after) / median(clean)),
            "worst_ratio": rnd(max(after) / median(clean)),
            "all_tags_present_after_next_commit": f"{back}/{repeat}",
        }
        log(f"{name}: {out[name]}")
    ws.close()
    return out


def random_kills(root: Path, kills: int, rng: random.Random) -> dict[str, object]:
    ws = Workspace.open(root)
    ws.registry.commit("k", MODEL, message="warm")
    clean, after, locks_left, tags_lost, tags_back = [], [], 0, 0, 0
    for i in range(kills):
        clean.append(timed_commit(ws))
        p = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(root)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert p.stdout is not None and p.stdin is not None
        assert p.stdout.readline().strip() == "ready"
        p.stdin.write("go\n")
        p.stdin.flush()
        time.sleep(rng.uniform(0.02, 0.3))
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        locks = list(ws.git.git_dir.rglob("*.lock"))
        locks_left += bool(locks)
        lost = missing_tags(ws)
        tags_lost += bool(lost)
        after.append(timed_commit(ws))
        tags_back += bool(lost and not missing_tags(ws))
        log(f"kill {i + 1}: locks {len(locks)}, tags lost {lost}, next commit {after[-1] * 1000:.1f} ms")
    ws.close()
    return {
        "kills": kills,
        "clean_commit_ms": rnd(median(clean) * 1000, 2),
        "next_commit_ms_median": rnd(median(after) * 1000, 2),
        "next_commit_median_ratio": rnd(median(after) / median(clean)),
        "next_commit_worst_ratio": rnd(max(after) / median(clean)),
        "kills_leaving_a_lock_file": locks_left,
        "kills_losing_a_tag": tags_lost,
        "lost_tags_back_after_the_next_commit": tags_back,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        doc = {
            "benchmark": "recovery",
            "when": now_iso(),
            "crash_states": crash_states(Path(tmp) / "states" / ".mm", args.repeat),
            "random_kills": random_kills(Path(tmp) / "kills" / ".mm", args.kills, random.Random(7)),
        }
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
