"""The docs say what the code does: defaults, the request path, the page list, the site's setup.

- docs/configuration.md's complete file lists every field of the plain sections with the models'
  defaults, and every default in its tables is the model's;
- every Markdown table is whole (a paragraph or a code block in the middle of one leaves its
  remaining rows as raw `| ... |` text);
- docs/index.md links every page;
- docs/security.md's "What every request goes through" lists the pipeline's steps
  (:data:`sidecar.proxy.pipeline.STEPS`) in their order;
- the built site reads from files (``use_directory_urls: false``) and its code blocks scroll or wrap
  instead of being clipped (``extra_css``).
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from sidecar.config import Config
from sidecar.config.models import KeyConfig
from sidecar.proxy.pipeline import STEPS
from tests.test_docs import DOCS, MKDOCS_YML, PAGES, fences, links, rel

CONFIGURATION = DOCS / "configuration.md"
#: The sections the complete file shows whole (vault and keys have their own examples).
PLAIN_SECTIONS = ("upstream", "admin", "server", "logging", "clock")
_ROW = re.compile(r"^\|\s*`(?P<field>[\w.]+)`\s*\|\s*(?P<default>[^|]*?)\s*\|")


def complete_file() -> dict[str, Any]:
    block = next(f for f in fences(CONFIGURATION) if f.lang == "yaml")
    data: dict[str, Any] = yaml.safe_load(block.text)
    return data


def _dumped(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def default_at(model: type[BaseModel], dotted: str) -> object:
    """The default of ``model``'s field at ``dotted`` (``ws.max_connections``), as YAML reads it."""
    head, _, rest = dotted.partition(".")
    field = model.model_fields[head]
    default = field.get_default(call_default_factory=True)
    if not rest:
        return _dumped(default)
    assert isinstance(default, BaseModel), dotted
    return default_at(type(default), rest)


def section_defaults(name: str) -> dict[str, Any]:
    default = Config.model_fields[name].get_default(call_default_factory=True)
    assert isinstance(default, BaseModel)
    return default.model_dump(mode="json")


@pytest.mark.parametrize("section", PLAIN_SECTIONS)
def test_the_complete_file_shows_every_field_of_a_section_with_its_default(section: str) -> None:
    assert complete_file()[section] == section_defaults(section)


def test_the_complete_files_key_entries_show_defaults_for_every_optional_field_they_name() -> None:
    required = {n for n, f in KeyConfig.model_fields.items() if f.is_required()}
    shown = {
        field: value
        for key in complete_file()["keys"]
        for field, value in key.items()
        if field not in required
    }
    assert shown, "the complete file's keys show no optional field"
    wrong = {f: v for f, v in shown.items() if v != default_at(KeyConfig, f)}
    assert not wrong, f"not the defaults: {wrong}"


def table_defaults(section: str, text: str) -> dict[str, str]:
    """``field -> default`` cell of the tables under ``## section`` down to its first ``###``
    (cells that are a value)."""
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    rows = {}
    for line in body.splitlines():
        m = _ROW.match(line)
        if m and m["default"].startswith("`"):
            rows[m["field"]] = m["default"].split("`")[1]  # `67108864` (64 MiB): the value
    return rows


@pytest.mark.parametrize(
    ("section", "model"), [*((s, None) for s in PLAIN_SECTIONS), ("keys", KeyConfig)]
)
def test_every_default_in_the_configuration_tables_is_the_models(
    section: str, model: type[BaseModel] | None
) -> None:
    rows = table_defaults(section, CONFIGURATION.read_text())
    assert rows, f"no table rows with defaults under ## {section}"
    for field, cell in rows.items():
        if model is None:
            expected = default_at(Config, f"{section}.{field}")
        else:
            expected = default_at(model, field)
        shown = yaml.safe_load(cell)
        if isinstance(shown, dict) and isinstance(expected, dict):  # `{}`: the section's defaults
            expected = {k: v for k, v in expected.items() if k in shown}
        assert shown == expected, f"## {section}: `{field}` shows {cell}"


def broken_tables(text: str) -> list[int]:
    """1-based lines where a table row stands without a header and separator above it (outside
    code blocks): the rest of a table that something split."""
    problems = []
    lines = text.splitlines()
    in_fence = False
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        if in_fence or not line.startswith("|"):
            continue
        starts_table = i == 0 or not lines[i - 1].startswith("|")
        separator = i + 1 < len(lines) and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[i + 1])
        if starts_table and not separator:
            problems.append(i + 1)
    return problems


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_table_is_whole(page: Path) -> None:
    assert broken_tables(page.read_text()) == [], rel(page)


def test_the_table_check_finds_a_table_split_by_a_paragraph() -> None:
    text = "| a | b |\n|---|---|\n| 1 | 2 |\n\nsplit\n\n| 3 | 4 |\n"
    assert broken_tables(text) == [7]
    assert broken_tables("```\n| not | a table |\n```\n") == []


def test_the_index_lists_every_page() -> None:
    index = DOCS / "index.md"
    linked = {(DOCS / t.partition("#")[0]).resolve() for _, t in links(index) if ".md" in t}
    pages = {p.resolve() for p in DOCS.glob("*.md")} - {index.resolve()}
    missing = sorted(p.name for p in pages - linked)
    assert not missing, f"docs/index.md does not list {', '.join(missing)}"


def documented_steps(text: str) -> list[str]:
    section = text.split("\n## What every request goes through\n", 1)[1].split("\n## ", 1)[0]
    return [m.lower() for m in re.findall(r"^\d+\. \*\*(.+?)\*\*", section, re.M)]


def test_the_security_pages_request_path_is_the_pipelines() -> None:
    steps = documented_steps((DOCS / "security.md").read_text())
    assert steps[0] == "listener limits"  # the listener's, before the pipeline
    assert steps[1:] == [s.lower() for s in STEPS]


def test_the_site_reads_from_files_and_code_blocks_are_not_clipped() -> None:
    config = yaml.safe_load(MKDOCS_YML.read_text())
    assert config["use_directory_urls"] is False  # links open pages, not directory listings
    sheets = [DOCS / css for css in config["extra_css"]]
    css = "".join(p.read_text() for p in sheets)
    assert re.search(r"\.md-typeset pre > code\s*\{[^}]*overflow-x:\s*auto", css), css
    assert re.search(r"\.md-typeset table:not\(\[class\]\)[^{]*\{[^}]*overflow-x:\s*auto", css)
