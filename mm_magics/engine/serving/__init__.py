"""Serving: the HTTP app (V2 + MLflow), micro-batching, local and Docker runners, deployment records."""
