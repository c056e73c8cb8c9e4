"""The processes users start: CLI, SLM server launcher (and later the API, batch, worker)."""
