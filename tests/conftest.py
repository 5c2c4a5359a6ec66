"""Shared fixtures. Each area keeps its fixtures in its own module, registered here."""

pytest_plugins = [
    "tests.leaks",
    "tests.fixtures_exchange",
    "tests.fixtures_helm",
    "tests.fixtures_bao",
    "tests.fixtures_transit",
    "tests.fixtures_redis",
]
