"""Deployments as one engine service: deploy, undeploy, list, predict, switch (rollback) — for every face.

Deploying moves the version into the *deploy* stage through its lifecycle gates first: a refused gate refuses the
deployment. Switching what a deployment serves loads and health-checks the new version before it takes traffic
(in-process for local servers, start-new-then-stop-old for containers), so a rollback drops no request.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..atomic import LockTimeout, file_lock
from ..clock import now_iso
from ..errors import DeploymentError, Fix, GateError, MMError, NotDeployedError
from ..hosts import check_host, check_port
from ..lifecycle import SERVING
from ..monitoring.promotion import AUTO_MIN_LABELLED, Judgement, judge
from ..specs import check_name
from . import steward
from .client import ServerClient, error_text
from .deployments import Deployment, DeploymentStore, Prediction, Runner
from .local import LocalRunner
from .tokens import workspace_secret
from .workers import MAX_WORKERS

if TYPE_CHECKING:
    from ..records import Transition, Version
    from ..workspace import Workspace
    from .kubernetes import KubernetesExport
    from .publish import PublishedImage


MAX_PROBES = 10_000
STEWARD_GONE = "automatically is not running"
#: How long a deploy waits for another session's deploy, switch or undeploy of the same model.
LOCK_TIMEOUT = 600.0


class Deployer:
    """The serving service: owns the deployment records and the one per-model lock; runners only run servers."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.store = DeploymentStore(workspace.run_dir)
        self.client = ServerClient()
        self.local = LocalRunner(workspace, self.client)
        self._docker: Any = None

    def close(self) -> None:
        """Close the HTTP client (its keep-alive connections); the servers keep running."""
        self.client.close()

    def docker(self) -> Any:
        if self._docker is None:
            from .docker_runner import DockerRunner

            base = self.ws.local_config.get("docker_base_image") or self.ws.config.get("docker_base_image")
            self._docker = DockerRunner(self.ws, base_image=base, http=self.client)
        return self._docker

    def docker_available(self) -> tuple[bool, str]:
        """Whether ``--docker`` can work here: an engine answers and the base image is present (or pullable)."""
        try:
            runner = self.docker()
            runner.ensure_base_image()
        except MMError as exc:
            return False, str(exc)
        return True, f"Docker engine ready, base image {runner.base_image}"

    def _runner(self, dep: Deployment) -> Runner:
        return self.docker() if dep.runner == "docker" else self.local

    def secret(self, kind: str) -> str:
        """A per-workspace secret kept in run/secrets (never in git), created on first use."""
        return workspace_secret(self.ws.run_dir, kind)

    # -- verbs -----------------------------------------------------------------------------------------------------
    def deploy(
        self,
        spec: str,
        *,
        docker: bool = False,
        port: int | None = None,
        host: str = "127.0.0.1",
        batch: bool = True,
        force: bool = False,
        reason: str = "",
        workers: int = 1,
        canary: float | None = None,
        shadow: bool = False,
        auto: bool = False,
    ) -> Deployment:
        """Serve ``spec``; ``workers`` processes share the port (up to one per core is useful). Deploying another
        version of a served model switches it in place; asking for another worker count restarts it. ``canary``
        (a percentage) or ``shadow`` serve it beside the deployed version instead (:meth:`release`), decided by the
        promotion rule when ``auto``."""
        if canary is not None or shadow:
            if canary is not None and shadow:
                raise MMError("choose --canary PERCENT or --shadow, not both")
            if canary is not None and not (isinstance(canary, (int, float)) and 0 < canary < 100):
                shown = f"{canary:g}" if isinstance(canary, (int, float)) else repr(canary)
                whole = " (every request is a switch: deploy it without --canary)" if shown == "100" else ""
                raise MMError(
                    f"--canary takes the percentage of requests the candidate answers, more than 0 and less than 100 "
                    f"(e.g. 10), not {shown}{whole}"
                )
            mode = "shadow" if shadow else "canary"
            if port is not None or workers != 1:
                raise MMError(
                    f"a {mode} runs inside the deployed server, on its port and workers: leave out --port and --workers"
                )
            name = self.ws.registry.get(spec).name
            current = self.store.get(name)
            if docker and current is not None and current.runner != "docker":
                raise MMError(
                    f"{name} runs as a local process, so its {mode} does too: leave out --docker (or redeploy {name} "
                    "with --docker first)"
                )
            return self.release(spec, mode, float(canary or 0.0), reason=reason, force=force, auto=auto)
        if auto:
            raise MMError("--auto decides a canary or a shadow: add --canary PERCENT or --shadow")
        if not isinstance(workers, int) or isinstance(workers, bool) or not 1 <= workers <= MAX_WORKERS:
            raise MMError(f"workers must be a whole number from 1 to {MAX_WORKERS}, not {workers!r}")
        version = self.ws.registry.get(spec)
        check_host(host)
        if docker:
            self.docker().check_host(host)
        check_port(port, "127.0.0.1" if docker else host)  # before the lifecycle moves or a running server stops
        with self._lock(version.name):
            return self._deploy(
                version, docker=docker, port=port, host=host, batch=batch, force=force, reason=reason, workers=workers
            )

    def _deploy(
        self,
        version: Version,
        *,
        docker: bool,
        port: int | None,
        host: str,
        batch: bool,
        force: bool,
        reason: str,
        workers: int = 1,
    ) -> Deployment:
        current = self.get(version.name)
        earlier: list[dict[str, Any]] = []  # a restarted deployment keeps its history
        if current is not None and current.status == "running":
            same_runner = current.runner == ("docker" if docker else "local") and current.workers == workers
            if current.version == version.id and same_runner:
                return current
            if same_runner:
                return self._switch(version.name, version.id, reason=reason or f"Deploy {version.id}", force=force)
            if current.release:  # the candidate lives in the server that stops: dropped on the record first
                current = self._abort(current, f"Dropped: {version.name} restarts as another kind of deployment")
            earlier = current.history
            self._undeploy(version.name)
        reason = reason or f"Deploy {version.id}"
        if version.stage not in SERVING:  # refused gates refuse the deployment before a server starts
            self.ws.lifecycle.preflight(version.id, "deploy", reason, force=force)
        if current is not None and current.status != "running":  # stale or unhealthy: clear what is left of it
            self._runner(current).stop(current, timeout=1)
        runner: Runner = self.docker() if docker else self.local
        dep = runner.start(version, port=port, host=host, batch=batch, workers=workers)
        try:  # the stage moves once the server answers: a server that never started leaves the version as it was
            self._note_gates(dep, self._enter_deploy(version, reason, force))
        except BaseException:
            runner.stop(dep)
            raise
        dep.history = [*earlier, {"time": now_iso(), "version": version.id, "actor": self.ws.actor, "action": "deploy"}]
        self.store.save(dep)
        dep.status = "running"
        return dep

    def _enter_deploy(self, version: Version, reason: str, force: bool) -> Transition | None:
        if version.stage in SERVING:
            return None
        return self.ws.lifecycle.transition(version.id, "deploy", reason, force=force)

    def _note_gates(self, dep: Deployment, move: Transition | None) -> None:
        """Put on the record what the deploy gates said, and whether they were overridden: a forced deploy must not
        look like a normal one."""
        dep.stage = self.ws.registry.get(dep.version).stage
        dep.forced = bool(move and move.forced)
        dep.gates = [{"gate": g.gate, "passed": g.passed, "detail": g.detail} for g in (move.gates if move else [])]

    def get(self, name: str) -> Deployment | None:
        dep = self.store.get(check_name(name))
        if dep is not None:
            dep.status = self._runner(dep).status(dep)
            self._check_steward(dep)
        return dep

    @staticmethod
    def _check_steward(dep: Deployment) -> None:
        """A release meant to be decided automatically whose steward is gone (a restart) says so, with the fix; a
        decided release drops that note."""
        if dep.note and STEWARD_GONE in dep.note and not dep.release:
            dep.note = None
        if dep.release and dep.release.get("auto") and not steward.running(dep.release):
            dep.note = (
                f"the process deciding the release of {dep.release['version']} {STEWARD_GONE} (the "
                f"machine restarted?): decide with mm promote {dep.name} or mm abort {dep.name}, or start the "
                "release again with --auto"
            )

    def require(self, name: str) -> Deployment:
        dep = self.get(check_name(name))
        if dep is None:
            deployed = ", ".join(d.name for d in self.store.all()) or "none"
            raise NotDeployedError(
                f"{name} is not deployed (deployed: {deployed}): deploy it with {{fix}}", fix=Fix("deploy", (name,))
            )
        return dep

    def list(self) -> list[Deployment]:
        out = []
        for dep in self.store.all():
            dep.status = self._runner(dep).status(dep)
            self._check_steward(dep)
            out.append(dep)
        return out

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        """One deploy, switch or undeploy of a model at a time, across kernels: two kernels deploying the same model
        at once would otherwise both start a server, and the one whose record lost would serve on, unowned."""
        try:
            with file_lock(self.store.root / f".{check_name(name)}.deploy.lock", timeout=LOCK_TIMEOUT):
                yield
        except LockTimeout:
            raise DeploymentError(
                f"another session has been deploying {name} for over {LOCK_TIMEOUT:.0f} s (a Docker build can take "
                "a few minutes): wait for it, then try again"
            ) from None

    def undeploy(self, name: str) -> Deployment:
        check_name(name)
        if self.store.get(name) is None:  # before any lock file is made for a name nobody deployed
            raise NotDeployedError(f"{name} is not deployed: nothing to stop (see {{fix}})", fix=Fix("deployments"))
        with self._lock(name):
            return self._undeploy(name)

    def _undeploy(self, name: str) -> Deployment:
        dep = self.store.get(name)
        if dep is None:
            raise NotDeployedError(f"{name} is not deployed: nothing to stop (see {{fix}})", fix=Fix("deployments"))
        steward.stop(dep.release)
        self._runner(dep).stop(dep)
        self.store.delete(name)
        dep.status = "stopped"
        return dep

    def switch(self, name: str, spec: str, *, reason: str = "", force: bool = False) -> Deployment:
        """Serve ``spec`` in place of what ``name``'s deployment serves now, without a failed request."""
        with self._lock(name):
            return self._switch(name, spec, reason=reason, force=force)

    def _switch(self, name: str, spec: str, *, reason: str, force: bool) -> Deployment:
        dep = self._running(name, spec)
        version = self.ws.registry.get(spec)
        if version.name != name:
            raise DeploymentError(f"{version.id} is not a version of {name}")
        self.ws.registry.checkout(version.id)  # it must load (hash verified) before anything changes
        reason = reason or f"Switch {name} to {version.id}"
        if dep.release and dep.release["version"] == version.id:  # deploying the candidate promotes it
            return self._promote(dep, reason, force)
        if dep.release:  # a switch (a rollback, say) decides the release: the candidate goes first, on the record
            dep = self._abort(dep, f"Dropped by the switch to {version.id}: {reason}")
        if version.stage not in SERVING:  # gates first; the stage moves once the new version serves
            self.ws.lifecycle.preflight(version.id, "deploy", reason, force=force)
        previous = dep.version
        dep = self._serve(dep, version, reason=reason, force=force)
        try:
            self._note_gates(dep, self._enter_deploy(version, reason, force))
        except BaseException:  # e.g. another session moved the version meanwhile: serve what the lifecycle says
            with contextlib.suppress(Exception):
                self._serve(dep, self.ws.registry.get(previous), reason=f"Back to {previous}: {reason}", force=True)
            raise
        dep.history.append(
            {
                "time": now_iso(),
                "version": version.id,
                "previous": previous,
                "actor": self.ws.actor,
                "action": "switch",
                "reason": reason,
            }
        )
        self.store.save(dep)
        dep.status = "running"
        self._retire_replaced(previous, version.id)
        return dep

    def _serve(self, dep: Deployment, version: Version, *, reason: str, force: bool) -> Deployment:
        """Make ``dep`` serve ``version`` (an in-process load for a local server, a new container for Docker); the
        record points at the new server as soon as it takes traffic."""
        return self._runner(dep).switch(dep, version, reason=reason, force=force, publish=self.store.save)

    def _retire_replaced(self, previous: str, current: str, why: str = "") -> None:
        """The version a deployment stopped serving leaves the serving stages, so "deployed" stays true. ``why``
        becomes the lifecycle commit's message: the audit log keeps a release's decision and its reason."""
        if previous == current:
            return
        try:
            if self.ws.registry.get(previous).stage in SERVING:
                self.ws.lifecycle.transition(previous, "retire", why or f"Replaced by {current} in the deployment")
        except MMError:
            pass  # the switch itself is done and recorded; a lifecycle hiccup must not undo it

    def rollback(self, name: str, to: str, message: str) -> tuple[Version, Deployment | None]:
        """Registry rollback (a new version equal to ``to``), then switch the running deployment to it."""
        new = self.ws.registry.rollback(name, to, message)
        dep = self.get(name)
        if dep is None or dep.status != "running":
            return new, None
        # a rollback is a deliberate, audited decision: the no-regression gate must not block going back
        dep = self.switch(name, new.id, reason=message or f"Roll back to {to}", force=True)
        return self.ws.registry.get(new.id), dep  # read again: serving it moved it into the deploy stage

    # -- canary and shadow releases -----------------------------------------------------------------------------
    def release(
        self, spec: str, mode: str, percent: float = 0.0, *, reason: str = "", force: bool = False, auto: bool = False
    ) -> Deployment:
        """Serve ``spec`` beside the deployed version: a ``canary`` answering ``percent`` % of requests (sticky by
        the ``X-MM-Route-Key`` header), or a ``shadow`` predicting on every request without answering. It enters
        the deploy stage through the gates first, as any version that takes traffic does. With ``auto``, a steward
        process (:mod:`.steward`) promotes or aborts it when the promotion rule decides."""
        if force and not reason.strip():
            raise GateError(f"a forced {mode} needs a reason: add -m WHY (it is kept in the audit log)")
        version = self.ws.registry.get(spec)
        with self._lock(version.name):
            dep = self._running(version.name, spec)
            if dep.version == version.id:
                raise DeploymentError(f"{version.id} already serves {version.name}: release another version")
            reason = reason or f"{mode.capitalize()} of {version.id} beside {dep.version}"
            if mode == "canary" and not force:
                self._check_same_features(version, dep)
            if version.stage not in SERVING:
                self.ws.lifecycle.preflight(version.id, "deploy", reason, force=force)
            before = dep.release
            if before and before["version"] != version.id:  # the running candidate is dropped first, on the record
                dep = self._abort(dep, f"Replaced by the {mode} of {version.id}: {reason}")
            if dep.runner == "docker":  # the container holds its image's version only: hand it the candidate
                self.docker().deliver(dep, version)
            body = {"action": "start", "version": version.id, "mode": mode, "percent": percent}
            answer = self.client.release(
                dep.url, {**body, "reason": reason, "force": force}, self.secret("admin-token")
            )
            try:
                self._enter_deploy(version, reason, force)
            except BaseException:
                with contextlib.suppress(Exception):
                    self.client.release(dep.url, {"action": "abort", "name": dep.name}, self.secret("admin-token"))
                raise
            dep.release = answer["release"]
            if before and before["version"] == version.id and before["mode"] == mode:
                dep.release["started"] = before["started"]  # the same candidate, re-set: its evidence carries on
            steward.stop(before)  # a new release replaces the old one's steward
            if auto:
                every = float(self.ws.monitor.rules(dep.name).get("promote_check_s") or steward.EVERY_S)
                dep.release["auto"] = {"pid": steward.start(self.ws, dep.name, version.id, every), "every": every}
            dep.history.append({"time": now_iso(), "version": version.id, "actor": self.ws.actor, "action": mode,
                                "percent": percent, "reason": reason})  # fmt: skip
            self.store.save(dep)
            return dep

    def _check_same_features(self, version: Version, dep: Deployment) -> None:
        """A canary answers the champion's clients, who send the champion's features: one that takes others would
        fail its share of valid requests."""
        mine = list((version.schema or {}).get("feature_names") or [])
        theirs = list((self.ws.registry.get(dep.version).schema or {}).get("feature_names") or [])
        if mine and theirs and mine != theirs:
            raise DeploymentError(
                f"{version.id} takes other features than {dep.version} ({len(mine)} against {len(theirs)}: "
                f"{', '.join(mine[:4])}{' …' if len(mine) > 4 else ''}): clients send {dep.version}'s, so its share "
                f"of requests would fail; deploy it as a switch once clients send its features (mm deploy "
                f"{version.id}), or force the canary with --force -m WHY"
            )

    def promote(self, name: str, *, reason: str = "", force: bool = False) -> Deployment:
        """Make the candidate the served version (installed with one assignment: no request fails); the version it
        replaces retires. With a promotion rule set (``promote_min_labelled`` > 0 in the model's monitoring rules),
        the live evidence since the release started must satisfy it, unless ``force`` (with a reason)."""
        if force and not reason.strip():
            raise GateError("a forced promotion needs a reason: add -m WHY (it is kept in the deployment history)")
        with self._lock(name):
            return self._promote(self._with_release(name, "promote"), reason, force)

    def _promote(self, dep: Deployment, reason: str, force: bool) -> Deployment:
        if not force:
            self._check_live_evidence(dep)
        steward.stop(dep.release)
        candidate, previous, mode = dep.release["version"], dep.version, dep.release["mode"]
        self.client.release(dep.url, {"action": "promote", "name": dep.name}, self.secret("admin-token"))
        dep.version, dep.release = candidate, None
        dep.history.append({"time": now_iso(), "version": candidate, "previous": previous, "action": "promote",
                            "actor": self.ws.actor, "reason": reason or f"Promote {candidate}"})  # fmt: skip
        why = f"Replaced by {candidate}, promoted from its {mode}: {reason or 'promoted'}"
        self._retire_replaced(previous, candidate, why + (" (forced past the promotion rule)" if force else ""))
        dep.stage = self.ws.registry.get(candidate).stage
        self.store.save(dep)
        self._check_steward(dep)
        return dep

    def judge(self, name: str) -> Judgement:
        """What the promotion rule says of ``name``'s release now (``wait``, ``promote`` or ``abort``, and why), on
        the live comparison since it started. The rule's evidence is ``promote_min_labelled`` from the model's
        monitoring rules, or :data:`.promotion.AUTO_MIN_LABELLED` when none is set (what the automatic mode uses)."""
        dep = self._with_release(name, "judge")
        rules = self.ws.monitor.rules(dep.name)
        return judge(self._comparison(dep), rules, int(rules.get("promote_min_labelled") or 0) or AUTO_MIN_LABELLED)

    def _comparison(self, dep: Deployment) -> Any:
        self.flush_metrics(dep.name)
        since = max(1.0, time.time() - float(dep.release.get("started") or time.time()) + 1.0)
        return self.ws.monitor.snapshot(dep.name, since, deployment=dep).comparison

    def _check_live_evidence(self, dep: Deployment) -> None:
        """The promotion rule, on the live comparison since the release started (a one-line refusal otherwise)."""
        rules = self.ws.monitor.rules(dep.name)
        need = int(rules.get("promote_min_labelled") or 0)
        if need <= 0:
            return
        verdict = judge(self._comparison(dep), rules, need)
        fix = Fix("promote", (dep.name, "--force", "-m", "WHY"))
        if verdict.action == "wait":
            raise GateError(
                f"not enough live evidence to promote {dep.release['version']}: {verdict.why}; send more feedback, "
                "or override with {fix}",
                fix=fix,
            )
        if verdict.action == "abort":
            raise GateError(f"{verdict.why}: abort it, or override with {{fix}}", fix=fix)

    def abort(self, name: str, *, reason: str = "") -> Deployment:
        """Drop the candidate; the served version answers everything again and the candidate retires."""
        with self._lock(name):
            return self._abort(self._with_release(name, "abort"), reason)

    def _abort(self, dep: Deployment, reason: str) -> Deployment:
        candidate, mode = dep.release["version"], dep.release["mode"]
        steward.stop(dep.release)
        self.client.release(dep.url, {"action": "abort", "name": dep.name}, self.secret("admin-token"))
        dep.release = None
        dep.history.append({"time": now_iso(), "version": candidate, "action": "abort", "actor": self.ws.actor,
                            "reason": reason or f"Abort {candidate}"})  # fmt: skip
        why = f"Dropped the {mode} of {candidate} beside {dep.version}: {reason or 'aborted'}"
        self._retire_replaced(candidate, dep.version, why)  # before the record says so: whoever reads it sees both
        self.store.save(dep)
        self._check_steward(dep)
        return dep

    def _running(self, name: str, spec: str) -> Deployment:
        """``name``'s deployment, which must be running (else redeploy ``spec``)."""
        dep = self.require(name)
        if dep.status != "running":
            raise DeploymentError(
                f"{name}'s deployment is {dep.status}: redeploy with {{fix}}", fix=Fix("deploy", (spec,))
            )
        return dep

    def _with_release(self, name: str, action: str) -> Deployment:
        dep = self._running(name, name)
        if not dep.release:
            raise DeploymentError(
                f"{name} has no canary or shadow release to {action}: start one with {{fix}}",
                fix=Fix("deploy", (f"{name}@vN", "--canary", "10")),
            )
        return dep

    def image(self, spec: str, push: str | None = None) -> PublishedImage:
        """Build ``spec``'s image (the one a Docker deploy runs) and, with ``push``, push it to that registry."""
        from .publish import publish

        return publish(self.docker().images, self.ws.registry.get(spec), push)

    def export_kubernetes(self, spec: str, image: str, out: Path, **options: Any) -> KubernetesExport:
        """Manifests for ``spec`` served from ``image`` (KServe InferenceService, Deployment + Service), validated
        offline against Kubernetes' and KServe's schemas, then written into ``out``. ``options`` are
        :func:`.kubernetes.kubernetes_manifests`'s. Nothing talks to a cluster."""
        from .kubernetes import KubernetesExport, kubernetes_manifests, validate_manifests, write_manifests

        version = self.ws.registry.get(spec)
        manifests = kubernetes_manifests(version, image, **options)
        validate_manifests(manifests)
        return KubernetesExport(version.id, image, [str(p) for p in write_manifests(manifests, Path(out))], manifests)

    def flush_metrics(self, name: str) -> bool:
        """Ask a server (process or container) to write what it has recorded, so a snapshot taken now includes it.

        Best effort: False when nothing answers or the server predates the admin token."""
        dep = self.store.get(check_name(name))
        if dep is None:
            return False
        return self.client.flush(dep.url, self.secret("admin-token"))

    def probe(self, name: str, n: int = 20) -> list[dict[str, Any]]:
        """Timed single-row requests: network time = client total - the server's ``Server-Timing`` total."""
        if not (isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_PROBES):
            raise MMError(f"the number of probes must be a whole number from 1 to {MAX_PROBES}, not {n!r}")
        dep = self.require(name)
        rows = probe_rows(self.ws.registry.get(dep.version), self.ws.registry, n)
        out = []
        for i in range(n):
            p = self.predict(name, [rows[i % len(rows)]], probe=True)
            lat = p.latency_ms
            out.append(
                {
                    "t": time.time(),
                    "request_id": p.request_id,
                    "total_ms": lat["total"],
                    "server_ms": lat["server"],
                    "network_ms": lat["network"],
                }
            )
        return out

    def predict(
        self, name: str, data: Any, *, outputs: tuple[str, ...] = ("predict",), probe: bool = False
    ) -> Prediction:
        """Send rows through the real endpoint (V2), returning predictions, request id and the latency split.
        ``probe=True``: a synthetic request, answered but not recorded as traffic (nor drift, nor quality)."""
        dep = self.require(name)
        rows = _rows(data)
        body = {
            "inputs": [
                {"name": "input-0", "shape": [len(rows), len(rows[0]) if rows else 0], "datatype": "FP64", "data": rows}
            ],
            "outputs": [{"name": o} for o in outputs],
        }
        token = self.secret("token") if dep.token_required else None
        probe_token = self.secret("admin-token") if probe else None
        resp, total = self.client.infer(dep.url, name, body, token, probe_token=probe_token)
        if resp.status_code != 200:
            raise DeploymentError(f"{name} refused the request ({resp.status_code}): {error_text(resp)}")
        timing = parse_server_timing(resp.headers.get("server-timing", ""))
        payload = resp.json()
        result = {o["name"]: np.reshape(o["data"], o["shape"]).tolist() for o in payload["outputs"]}
        server_ms = timing.get("total", 0.0)
        return Prediction(
            version=f"{name}@v{payload['model_version']}",
            request_id=resp.headers.get("x-request-id"),
            outputs=result,
            latency_ms={
                "total": total * 1000,
                "server": server_ms,
                "queue": timing.get("queue", 0.0),
                "processing": timing.get("proc", 0.0),
                "network": max(total * 1000 - server_ms, 0.0),
            },
        )


def probe_rows(version: Any, registry: Any, n: int) -> list[list[Any]]:
    """Rows to probe a deployment with: the version's probe sample if kept, else neutral zeros of the right width."""
    sample = registry.probe_data(version.id) if version.probe else None
    if sample is not None and len(sample):
        return _rows(sample[: max(n, 1)] if not hasattr(sample, "iloc") else sample.iloc[: max(n, 1)])
    width = int((version.schema or {}).get("n_features") or 1)
    return [[0.0] * width]


def parse_server_timing(header: str) -> dict[str, float]:
    out = {}
    for part in header.split(","):
        name, _, rest = part.strip().partition(";")
        if rest.startswith("dur="):
            try:
                out[name] = float(rest[4:])
            except ValueError:
                continue
    return out


def _rows(data: Any) -> list[list[Any]]:
    if hasattr(data, "to_numpy"):
        data = data.to_numpy()
    arr = np.asarray(data, dtype=object)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise MMError(f"data must be one row or a table of rows, got shape {arr.shape}")
    return [[_plain(v) for v in row] for row in arr.tolist()]


def _plain(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and not math.isfinite(value):
        raise MMError(f"{value} is not a value JSON can carry: replace NaN and infinite values before predicting")
    return value
