"""The ASGI app uvicorn's workers import; settings come from CONNHUB_* variables."""

import gc
import logging

from connhub.api.app import create_app
from connhub.config import Settings
from connhub.logs import configure, lean_records

settings = Settings()
if not logging.getLogger().handlers:  # run by uvicorn itself: `connhub serve` has configured logging
    configure(settings.log_level, settings.log_format)
lean_records()  # in every worker process
app = create_app(settings)
# What exists now (modules, the app, caches: ~120,000 objects) lives as long as the process. Frozen,
# the collector's full passes skip it; otherwise each pass walks it all, a 20-40 ms pause that shows
# up as the p99 of every request in flight.
gc.freeze()
