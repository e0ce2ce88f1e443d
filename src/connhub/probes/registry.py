"""Which probe serves which engine. Engine modules are imported on first use, so a missing
optional driver only affects its own engine."""

from __future__ import annotations

import importlib

from connhub.domain.engines import Engine
from connhub.probes.base import Probe


def probe_for(engine: str) -> Probe:
    """The probe of `engine` (an Engine value); each engine module (Engine.facts.probe_module) exposes `PROBE`."""
    module = importlib.import_module(f"connhub.probes.{Engine(engine).facts.probe_module}")
    probe: Probe = module.PROBE
    return probe
