"""The layers README's Layout describes, checked by what each module loads in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

FRAMEWORKS = ("fastapi", "starlette", "pydantic", "sqlalchemy", "python_multipart")
OUTER_LAYERS = ("connhub.service", "connhub.store", "connhub.probes", "connhub.api.http", "connhub.bootstrap")


def loaded_by(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def packages_in(loaded: set[str], roots: tuple[str, ...]) -> set[str]:
    return {name for name in loaded if name.split(".")[0] in roots or name.startswith(roots)}


@pytest.mark.parametrize(
    "module",
    ["connhub.api.dialects.reporter.translate", "connhub.api.dialects.chartbrew.translate", "connhub.domain.engines"],
)
def test_translators_and_the_domain_load_no_framework_service_or_store(module: str) -> None:
    loaded = loaded_by(module)

    assert packages_in(loaded, FRAMEWORKS) == set()
    assert packages_in(loaded, OUTER_LAYERS) == set()


def test_the_multipart_reader_knows_no_dialect() -> None:
    assert {name for name in loaded_by("connhub.api.multipart") if name.startswith("connhub.api.dialects")} == set()


def test_importing_every_probe_changes_nothing_process_wide() -> None:
    """No thread pool, audit hook or driver patch at import: they are made on a probe's first use."""
    code = (
        "import sys, threading, pytds.tls; check = pytds.tls.validate_host; "
        "from connhub.domain.engines import Engine; import importlib; "
        "[importlib.import_module(f'connhub.probes.{e.facts.probe_module}') for e in Engine]; "
        "from connhub.probes import blocking; "
        "print(blocking._pools == {}, pytds.tls.validate_host is check, threading.active_count())"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert done.stdout.split() == ["True", "True", "1"]
