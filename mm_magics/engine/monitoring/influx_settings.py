"""Where InfluxDB is, resolved once for every process that writes to it: no influxdb-client import here.

The workspace's machine-local ``local.json`` (``"influx": {url, org, bucket, token, tags}``, never committed) wins key
by key; what it lacks comes from the client's own ``INFLUXDB_V2_*`` variables, as ``InfluxDBClient.from_env_properties``
reads them, plus ``INFLUXDB_V2_BUCKET``. The Docker runner needs the same answer without the client library (to
hand a container its settings), which is why this lives apart from the sink.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..hosts import is_loopback

DEFAULT_BUCKET = "mm_magics"
INFLUX_STATE = "influx-state.json"  # beside the metric store: what the servers' sinks last reported
TAG_PREFIX = "INFLUXDB_V2_TAG_"


@dataclass(frozen=True)
class InfluxSettings:
    url: str
    token: str | None = field(default=None, repr=False)  # kept out of reprs, logs and state files
    org: str | None = None
    bucket: str = DEFAULT_BUCKET
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def on_loopback(self) -> bool:
        """True when the server is this machine's loopback: a container reaches it only on the host's network."""
        return is_loopback(urlsplit(self.url).hostname or "")

    def container_environment(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """The ``INFLUXDB_V2_*`` variables that give a container these settings, the token excepted.

        Connection settings the host has (timeout, TLS, pool size) travel too. The token does not: an environment
        variable shows in ``docker inspect``, so the runner hands it over as a file readable only by the server.
        """
        env = os.environ if env is None else env
        out = {k: v for k, v in env.items() if k.startswith("INFLUXDB_V2_") and not k.startswith(TAG_PREFIX)}
        out.pop("INFLUXDB_V2_TOKEN", None)
        out["INFLUXDB_V2_URL"] = self.url
        out["INFLUXDB_V2_BUCKET"] = self.bucket
        if self.org:
            out["INFLUXDB_V2_ORG"] = self.org
        else:
            out.pop("INFLUXDB_V2_ORG", None)
        out.update({TAG_PREFIX + str(k).upper(): str(v) for k, v in self.tags.items()})
        return out


def resolve(local: Mapping[str, Any] | None, env: Mapping[str, str] | None = None) -> InfluxSettings | None:
    """The InfluxDB a workspace writes to, or None when no URL is configured anywhere."""
    env = os.environ if env is None else env
    cfg = (local or {}).get("influx") or {}
    if not isinstance(cfg, Mapping):
        cfg = {}
    url = cfg.get("url") or env.get("INFLUXDB_V2_URL")
    if not url:
        return None
    tags = {k[len(TAG_PREFIX) :].lower(): v for k, v in env.items() if k.startswith(TAG_PREFIX)}
    tags.update(cfg.get("tags") or {})
    return InfluxSettings(
        url=str(url),
        token=cfg.get("token") or env.get("INFLUXDB_V2_TOKEN") or None,
        org=cfg.get("org") or env.get("INFLUXDB_V2_ORG") or None,
        bucket=cfg.get("bucket") or env.get("INFLUXDB_V2_BUCKET") or DEFAULT_BUCKET,
        tags=tags,
    )


def redact_url(url: str) -> str:
    """The URL without user:password, fit to show in %mm_monitor and in a state file."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _env_bool(value: str) -> bool:
    return value.lower() in ("yes", "true")  # influxdb_client.client._base._to_bool


def client_options(env: Mapping[str, str]) -> tuple[float | None, dict[str, Any]]:
    """The connection settings ``InfluxDBClient.from_env_properties`` reads, besides url, token and org.

    Returns (timeout in seconds or None, keyword arguments for ``InfluxDBClient``), with the same variable names,
    defaults and parsing as the client, so a machine configured for the client's CLI-style setup works unchanged.
    """
    options: dict[str, Any] = {}
    timeout = env.get("INFLUXDB_V2_TIMEOUT")
    if "INFLUXDB_V2_VERIFY_SSL" in env:
        options["verify_ssl"] = _env_bool(env["INFLUXDB_V2_VERIFY_SSL"])
    for name, key in (
        ("INFLUXDB_V2_SSL_CA_CERT", "ssl_ca_cert"),
        ("INFLUXDB_V2_CERT_FILE", "cert_file"),
        ("INFLUXDB_V2_CERT_KEY_FILE", "cert_key_file"),
        ("INFLUXDB_V2_CERT_KEY_PASSWORD", "cert_key_password"),
    ):
        if env.get(name):
            options[key] = env[name]
    if (pool := _env_int(env.get("INFLUXDB_V2_CONNECTION_POOL_MAXSIZE"))) is not None:
        options["connection_pool_maxsize"] = pool
    if "INFLUXDB_V2_AUTH_BASIC" in env:
        options["auth_basic"] = _env_bool(env["INFLUXDB_V2_AUTH_BASIC"])
    timeout_ms = _env_int(timeout)
    return (timeout_ms / 1000.0 if timeout_ms else None), options


def _env_int(value: str | None) -> int | None:
    """An integer setting; a malformed one is ignored rather than stopping a model server from starting."""
    try:
        return int(value) if value else None
    except ValueError:
        return None
