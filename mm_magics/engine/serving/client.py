"""One small HTTP client for our own server's routes: readiness, status, swap, flush, inference.

The Deployer, the local runner and the Docker runner all talk to servers we started; they do it through this one
client (httpx, keep-alive, TCP_NODELAY) instead of three styles of request, and turn its answers into one-line
errors the same way.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx

from ..errors import DeploymentError, Fix
from .protocol import PROBE_HEADER

READY = "/v2/health/ready"


def error_text(resp: httpx.Response) -> str:
    """The server's own one-line reason (our servers answer ``{"error": ...}``), or the start of its body."""
    try:
        return str(resp.json().get("error", resp.text))
    except (ValueError, AttributeError):
        return resp.text[:200]


class ServerClient:
    """Requests to mm_magics servers; one instance is reused (keep-alive) and closed with its owner."""

    def __init__(self, timeout: float = 30.0) -> None:
        # TCP_NODELAY, because h11 writes headers and body separately and Nagle + delayed ACK would add ~40 ms to
        # every request after the first; keep-alive, so %mm_predict measures the model rather than TCP set-up
        nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
        self._http = httpx.Client(timeout=timeout, transport=httpx.HTTPTransport(socket_options=nodelay))

    def close(self) -> None:
        self._http.close()

    def ready(self, url: str, timeout: float = 2.0) -> bool:
        try:
            return self._http.get(f"{url}{READY}", timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, url: str, deadline: float, *, alive: Any = None) -> None:
        """Poll until the server answers ready; ``alive()`` returning False (the process died) or the monotonic
        ``deadline`` passing ends the wait with a :class:`DeploymentError`."""
        while not self.ready(url):
            if alive is not None and not alive():
                raise DeploymentError(f"the server at {url} stopped before it was ready")
            if time.monotonic() > deadline:
                raise DeploymentError(f"{url} did not become ready in time")
            time.sleep(0.02)

    def served(self, url: str, token: str | None = None) -> dict[str, str] | None:
        """``{model: NAME@vN}`` the server says it serves now, or None when it does not answer."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            resp = self._http.get(f"{url}/mm/v1/status", headers=headers, timeout=2)
            models = resp.json().get("models") if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        return models if isinstance(models, dict) else None

    def load(self, url: str, version: str, admin_token: str, *, reason: str, force: bool) -> None:
        """Swap ``version`` into a running server (it checks the deploy gates and health-checks it first)."""
        try:
            resp = self._http.post(
                f"{url}/mm/v1/load",
                json={"version": version, "reason": reason, "force": force},
                headers={"Authorization": f"Bearer {admin_token}"},
                timeout=120,
            )
        except httpx.HTTPError as exc:
            raise DeploymentError(f"could not reach the server at {url} ({exc}): redeploy it") from None
        if resp.status_code != 200:
            raise DeploymentError(f"{url} refused {version}: {error_text(resp)}")

    def release(self, url: str, body: dict[str, Any], admin_token: str) -> dict[str, Any]:
        """Start, promote or abort a canary or shadow release in a running server (``/mm/v1/release``)."""
        try:
            resp = self._http.post(
                f"{url}/mm/v1/release", json=body, headers={"Authorization": f"Bearer {admin_token}"}, timeout=120
            )
        except httpx.HTTPError as exc:
            raise DeploymentError(f"could not reach the server at {url} ({exc}): redeploy it") from None
        if resp.status_code != 200:
            raise DeploymentError(f"{url} refused the release: {error_text(resp)}")
        return resp.json()

    def flush(self, url: str, admin_token: str) -> bool:
        """Ask the server to write what it has recorded; False when it does not answer (best effort)."""
        try:
            resp = self._http.post(f"{url}/mm/v1/flush", headers={"Authorization": f"Bearer {admin_token}"}, timeout=5)
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    def infer(
        self, url: str, name: str, body: dict[str, Any], token: str | None, *, probe_token: str | None = None
    ) -> tuple[httpx.Response, float]:
        """POST a V2 inference request; returns the response and the client's own total time in seconds.
        ``probe_token`` (the admin token) marks it as a probe, which the server answers but does not record."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if probe_token:
            headers[PROBE_HEADER] = probe_token
        start = time.perf_counter()
        try:
            resp = self._http.post(f"{url}/v2/models/{name}/infer", json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DeploymentError(
                f"{name} at {url} did not answer ({exc}): check the deployment ({{fix}})", fix=Fix("deployments")
            ) from None
        return resp, time.perf_counter() - start
