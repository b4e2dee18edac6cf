from mm_magics.engine.monitoring.influx_settings import DEFAULT_BUCKET, InfluxSettings, resolve


def test_local_json_wins_key_by_key_over_the_client_env():
    env = {
        "INFLUXDB_V2_URL": "http://influx.example:8086",
        "INFLUXDB_V2_ORG": "env-org",
        "INFLUXDB_V2_TOKEN": "env-token",
        "INFLUXDB_V2_TAG_REGION": "eu",
    }
    assert resolve({}, {}) is None and resolve({"influx": {"org": "o"}}, {}) is None  # no URL: no InfluxDB
    s = resolve({"influx": {"bucket": "b", "token": "local-token", "tags": {"team": "ml"}}}, env)
    assert (s.url, s.org, s.bucket, s.token) == ("http://influx.example:8086", "env-org", "b", "local-token")
    assert dict(s.tags) == {"region": "eu", "team": "ml"}
    assert resolve({"influx": "not a mapping"}, env).bucket == DEFAULT_BUCKET
    assert "local-token" not in repr(s) and "env-token" not in repr(resolve({}, env))


def test_loopback_is_recognised():
    for url in ("http://127.0.0.1:8428", "http://localhost:8086", "http://[::1]:8086", "https://127.1.2.3/x"):
        assert InfluxSettings(url).on_loopback, url
    for url in ("http://influx.example:8086", "http://10.0.0.5:8086", "http://host.docker.internal:8086"):
        assert not InfluxSettings(url).on_loopback, url


def test_a_container_gets_everything_but_the_token_in_its_environment():
    env = {
        "INFLUXDB_V2_URL": "http://old:1",
        "INFLUXDB_V2_TOKEN": "secret",
        "INFLUXDB_V2_TIMEOUT": "3000",
        "INFLUXDB_V2_ORG": "env-org",
        "INFLUXDB_V2_TAG_REGION": "eu",
        "HOME": "/root",
    }
    s = InfluxSettings("http://influx.example:8086", token="secret", org=None, bucket="b", tags={"team": "ml"})
    out = s.container_environment(env)
    assert out == {
        "INFLUXDB_V2_URL": "http://influx.example:8086",
        "INFLUXDB_V2_BUCKET": "b",
        "INFLUXDB_V2_TIMEOUT": "3000",
        "INFLUXDB_V2_TAG_TEAM": "ml",
    }
    assert "secret" not in " ".join(out.values())
