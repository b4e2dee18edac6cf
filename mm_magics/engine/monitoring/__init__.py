"""Monitoring: metric stores (embedded SQLite, InfluxDB sink), the request recorder, drift, quality, alerts."""
