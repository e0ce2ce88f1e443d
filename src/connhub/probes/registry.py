"""Which probe serves which engine. Engine modules are imported on first use, so a missing
optional driver only affects its own engine."""

from __future__ import annotations

import importlib

from connhub.probes.base import Probe

_MODULES = {
    "POSTGRESQL": "connhub.probes.postgres",
    "MYSQL": "connhub.probes.mysql",
    "MONGODB": "connhub.probes.mongodb",
    "SQL_SERVER": "connhub.probes.mssql",
    "ORACLE": "connhub.probes.oracle",
}


def probe_for(engine: str) -> Probe:
    """The probe of `engine` (an Engine value); each engine module exposes `PROBE`."""
    module = importlib.import_module(_MODULES[engine])
    probe: Probe = module.PROBE
    return probe
