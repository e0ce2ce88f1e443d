"""The ASGI app uvicorn's workers import; settings come from CONNHUB_* variables."""

from connhub.api.app import create_app

app = create_app()
