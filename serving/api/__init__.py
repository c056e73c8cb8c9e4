"""The OpenAI-compatible chat agent API (FastAPI): ``create_app(settings)``."""
