"""The ASGI app uvicorn's workers import; settings come from CONNHUB_* variables."""

import logging

from connhub.api.app import create_app
from connhub.config import Settings

settings = Settings()
logging.basicConfig(
    level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=False
)
app = create_app(settings)
