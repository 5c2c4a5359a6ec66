"""README.md is generated from docs/readme/: it must be current and start with the two commands."""

from __future__ import annotations

from docs.build_readme import ROOT, assemble


def test_the_readme_is_generated_from_its_sections() -> None:
    assert (ROOT / "README.md").read_text() == assemble(), "README.md is stale: run make readme"


def test_the_readme_starts_with_exactly_the_two_set_up_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    block = lines[lines.index("```sh") + 1 : lines.index("```")]
    assert [line.split("#")[0].strip() for line in block] == ["make demo", "make test"]
    assert lines.index("```sh") <= 3
