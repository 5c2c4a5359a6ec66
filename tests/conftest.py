"""Shared fixtures and the `external` marker. Each area keeps its fixtures in its own module,
registered here.

A test is marked ``external`` (left out by ``make test-fast``) when it needs something outside this
Python process: a server (OpenBao, Redis), a tool (node, npm, java, curl, helm), the network (pip
and npm downloads) or any other process. The marking is automatic, so a test added later is marked
by what it uses, not by remembering to:

- by fixture: the test uses, directly or through another fixture, a fixture defined in one of
  :data:`EXTERNAL_PLUGINS` (``bao_dev``, ``transit``, ``redis_server``, ``helm``, ...);
- by module: the test's module imports :mod:`subprocess`, or anything from
  :data:`EXTERNAL_MODULES` (the OpenBao and Redis helpers, the client harness that runs node, java
  and curl).

``make test-fast`` runs ``-m 'not external and not slow'``; tests/test_markers.py checks the rule.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest

pytest_plugins = [
    "tests.leaks",
    "tests.fixtures_exchange",
    "tests.fixtures_helm",
    "tests.fixtures_bao",
    "tests.fixtures_transit",
    "tests.fixtures_redis",
]

#: Plugin modules whose fixtures start a server or fetch from the network.
EXTERNAL_PLUGINS = (
    "tests.fixtures_bao",
    "tests.fixtures_transit",
    "tests.fixtures_redis",
    "tests.fixtures_helm",
)
#: Modules whose use, imported into a test module, means another process (or the network).
EXTERNAL_MODULES = frozenset(
    (
        *EXTERNAL_PLUGINS,
        "subprocess",
        "tests.clients.harness",
        "sidecar.devtools.bao",
    )
)
_FIXTURE = re.compile(
    r"^@pytest(?:_asyncio)?\.fixture\b[^\n]*\n(?:@[^\n]*\n)*(?:async )?def (\w+)", re.M
)


def fixtures_defined_in(module: str) -> set[str]:
    """The names of the fixtures a plugin module defines (read from its source)."""
    path = Path(__file__).parent.parent / (module.replace(".", "/") + ".py")
    return set(_FIXTURE.findall(path.read_text()))


EXTERNAL_FIXTURES = frozenset(name for m in EXTERNAL_PLUGINS for name in fixtures_defined_in(m))


def module_is_external(module: ModuleType) -> bool:
    for value in vars(module).values():
        name = (
            value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
        )
        if name in EXTERNAL_MODULES:
            return True
    return False


def is_external(item: pytest.Item) -> bool:
    if EXTERNAL_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    module = getattr(item, "module", None)
    return module is not None and module_is_external(module)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if is_external(item):
            item.add_marker(pytest.mark.external)
