"""docs/guards.md shows the tables the code enforces: the field table and Gate's rate groups."""

from __future__ import annotations

from pathlib import Path

from sidecar.gate.ratelimits import groups_markdown
from sidecar.policy.guards.describe import field_table_markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "guards.md"


def test_the_documented_field_table_is_the_one_the_guards_read() -> None:
    assert field_table_markdown() in DOC.read_text(), "docs/guards.md: the field table is stale"


def test_the_documented_rate_groups_are_the_ones_the_budgets_use() -> None:
    assert groups_markdown() in DOC.read_text(), "docs/guards.md: the rate group table is stale"
