"""The `external` marker's rule (tests/conftest.py): by the fixtures a test uses and by what its
code calls, so that a test added later is marked without anyone remembering to."""

from __future__ import annotations

import textwrap
from types import ModuleType, SimpleNamespace
from typing import cast

import pytest

from tests.conftest import EXTERNAL_FIXTURES, is_external


def _module(source: str) -> ModuleType:
    module = ModuleType("tests.test_made_up")
    exec(compile(textwrap.dedent(source), "<made-up>", "exec"), module.__dict__)  # noqa: S102
    return module


def _item(module: ModuleType, test: str, fixtures: tuple[str, ...] = ()) -> pytest.Item:
    item = SimpleNamespace(module=module, function=getattr(module, test), fixturenames=fixtures)
    return cast(pytest.Item, item)


MODULE = _module(
    """
    import asyncio
    import subprocess
    import pytest

    def helper():
        return subprocess.run(["true"])

    def indirect():
        return helper()

    async def spawns():
        return await asyncio.create_subprocess_exec("true")

    @pytest.fixture
    def server():
        yield indirect()

    def test_pure():
        assert sum([1, 2]) == 3

    def test_calls_a_helper_that_runs_a_process():
        indirect()

    async def test_spawns_with_asyncio():
        await spawns()

    def test_uses_the_modules_server(server):
        pass

    def test_in_a_comprehension():
        return [helper() for _ in range(1)]

    def test_imports_subprocess_itself():
        import subprocess
        subprocess.run(["true"])

    def test_calls_another_test_modules_helper():
        from tests.conftest import is_external
        return is_external
    """
)


@pytest.mark.parametrize(
    ("test", "fixtures", "external"),
    [
        ("test_pure", (), False),
        ("test_pure", ("bao_dev",), True),  # a server fixture, however it is reached
        ("test_pure", ("exchange", "tmp_path"), False),  # the exchange runs in process
        ("test_calls_a_helper_that_runs_a_process", (), True),
        ("test_spawns_with_asyncio", (), True),
        ("test_uses_the_modules_server", ("server",), True),
        ("test_in_a_comprehension", (), True),
        ("test_imports_subprocess_itself", (), True),
    ],
)
def test_a_test_is_external_by_its_fixtures_or_by_what_its_code_calls(
    test: str, fixtures: tuple[str, ...], external: bool
) -> None:
    assert is_external(_item(MODULE, test, fixtures)) is external


def test_the_server_fixtures_are_read_from_their_modules() -> None:
    assert {"bao_dev", "bao_raft", "redis_server", "helm", "transit"} <= EXTERNAL_FIXTURES
    assert "exchange" not in EXTERNAL_FIXTURES
