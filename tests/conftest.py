"""Shared fixtures and the `external` marker. Each area keeps its fixtures in its own module,
registered here.

A test is marked ``external`` (left out by ``make test-fast``) when it needs something outside this
Python process: a server (OpenBao, Redis), a tool (node, npm, java, curl, helm), the network (pip
and npm downloads) or any other process. The marking is automatic, so a test added later is marked
by what it uses, not by remembering to:

- by fixture: the test uses, directly or through another fixture, a fixture defined in one of
  :data:`EXTERNAL_PLUGINS` (``bao_dev``, ``transit``, ``redis_server``, ``helm``, ...);
- by code: the test, a fixture its module defines, or a function of a test module they call (at
  any depth) uses :mod:`subprocess` or anything from :data:`EXTERNAL_MODULES` (the OpenBao and Redis
  helpers, the client harness that runs node, java and curl).

``make test-fast`` runs ``-m 'not external and not slow'``; tests/test_markers.py checks the rule.
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path
from types import CodeType, ModuleType

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
#: Attribute names that start a process whatever module they are reached through (asyncio's).
_SPAWNS = frozenset(("create_subprocess_exec", "create_subprocess_shell"))
_FIXTURE = re.compile(
    r"^@pytest(?:_asyncio)?\.fixture\b[^\n]*\n(?:@[^\n]*\n)*(?:async )?def (\w+)", re.M
)


def fixtures_defined_in(module: str) -> set[str]:
    """The names of the fixtures a plugin module defines (read from its source)."""
    path = Path(__file__).parent.parent / (module.replace(".", "/") + ".py")
    return set(_FIXTURE.findall(path.read_text()))


EXTERNAL_FIXTURES = frozenset(name for m in EXTERNAL_PLUGINS for name in fixtures_defined_in(m))


def _is_external(value: object) -> bool:
    name = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
    return name in EXTERNAL_MODULES


def code_uses_external(code: CodeType, module: ModuleType, seen: set[object]) -> bool:
    """Whether ``code`` (or a function of ``module`` it calls, at any depth) names something from
    :data:`EXTERNAL_MODULES`."""
    names = vars(module)
    for name in code.co_names:
        if name in _SPAWNS or name in EXTERNAL_MODULES:  # (`import subprocess` in a function)
            return True
        if name not in names:
            continue
        value = names[name]
        if _is_external(value):
            return True
        func = inspect.unwrap(value) if callable(value) else None
        if not inspect.isfunction(func) or func in seen:
            continue
        seen.add(func)
        # A helper of this module or of another test module (tests.test_ops_process's
        # sidecar_process), read with its own module's names.
        home = module if func.__module__ == module.__name__ else sys.modules.get(func.__module__)
        if home is not None and func.__module__.startswith("tests"):
            if code_uses_external(func.__code__, home, seen):
                return True
    return any(
        code_uses_external(const, module, seen)
        for const in code.co_consts
        if isinstance(const, CodeType)
    )


def is_external(item: pytest.Item) -> bool:
    fixtures = set(getattr(item, "fixturenames", ()))
    if EXTERNAL_FIXTURES & fixtures:
        return True
    module, function = getattr(item, "module", None), getattr(item, "function", None)
    if module is None or function is None:
        return False
    # The test itself and the fixtures its module defines (a module's own `server` fixture).
    own = [inspect.unwrap(vars(module)[f]) for f in fixtures if f in vars(module)]
    seen: set[object] = set()
    return any(
        inspect.isfunction(f) and code_uses_external(f.__code__, module, seen)
        for f in [inspect.unwrap(function), *own]
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if is_external(item):
            item.add_marker(pytest.mark.external)
