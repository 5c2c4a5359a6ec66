"""The documentation: README.md, and docs/*.md built into a site by mkdocs (make docs).

The suite fails when a relative link names a file that does not exist or an anchor that no heading
of its target produces, when a config example does not load with the real config loader, when
`mkdocs build --strict` fails, or when the README loses its two set-up commands, grows long or
stops linking a page of docs/. The checkers are tested on made-up pages too, so they can fail.
"""

from __future__ import annotations

import functools
import html
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import markdown
import pytest
import yaml

from sidecar.config import parse_config
from sidecar.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MKDOCS_YML = ROOT / "mkdocs.yml"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
# Links are checked in the chart's README too (its YAML blocks are Helm values, not configs).
LINKED_PAGES = [*PAGES, ROOT / "charts" / "gate-sidecar" / "README.md"]
README_MAX_LINES = 200

# The environment the config examples are loaded with: a vault: section may leave out `address`.
ENVIRON = {"VAULT_ADDR": "http://127.0.0.1:8200"}
# An HTML comment on the line right before a fence marks a block that is not a sidecar config
# (Helm values, a deliberately invalid example): `<!-- not-a-config -->` or
# `<!-- not-a-config: why -->`.
NOT_A_CONFIG = re.compile(r"^\s*<!--\s*not-a-config\b.*-->\s*$")

# What a config fragment leaves out, filled in before it is loaded.
FRAGMENT_KEY: dict[str, Any] = {
    "name": "example",
    "listen": "127.0.0.1:0",  # port 0 never clashes with another key's port
    "source": {"env": {}},
    "policy": "read-only",
}
FRAGMENT_KEY_DEFAULTS: dict[str, Any] = {"listen": "127.0.0.1:0", "source": {"env": {}}}
VAULT_SOURCES = {"vault", "vault_transit"}


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# -- reading Markdown ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Fence:
    """A fenced code block: where it starts, its language and its text."""

    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    marked_not_a_config: bool

    def __str__(self) -> str:
        return f"{rel(self.page)}:{self.line}"


_FENCE_OPEN = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+-]*)")


def fences(page: Path, text: str | None = None) -> list[Fence]:
    text = page.read_text() if text is None else text
    lines = text.splitlines()
    found: list[Fence] = []
    i = 0
    while i < len(lines):
        m = _FENCE_OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = len(m["indent"]), m["fence"]
        close = re.compile(rf"^ *{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not close.match(lines[j]):
            line = lines[j]
            body.append(line[indent:] if not line[:indent].strip() else line.lstrip())
            j += 1
        marked = i > 0 and bool(NOT_A_CONFIG.match(lines[i - 1]))
        found.append(Fence(page, i + 1, m["lang"].lower(), "\n".join(body) + "\n", marked))
        i = j + 1
    return found


def prose(text: str) -> str:
    """The text with code blocks and inline code blanked out (line numbers kept)."""
    lines = text.splitlines()
    inside: str | None = None
    for i, line in enumerate(lines):
        m = _FENCE_OPEN.match(line)
        if inside is None and m:
            inside = m["fence"]
            lines[i] = ""
        elif inside is not None:
            if re.match(rf"^ *{re.escape(inside[0])}{{{len(inside)},}}\s*$", line):
                inside = None
            lines[i] = ""
    joined = "\n".join(lines)
    # Inline code may span a line break; keep the newlines so line numbers stay right.
    return re.sub(r"(`+)(.+?)\1", lambda m: re.sub(r"[^\n]", "x", m[0]), joined, flags=re.S)


_INLINE_LINK = re.compile(
    r"\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?(?P<target>[^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)"
)
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(?P<target>[^\s>]+)>?", re.M)
_HTML_LINK = re.compile(r"\b(?:href|src)=\"(?P<target>[^\"]+)\"")


def links(page: Path, text: str | None = None) -> Iterator[tuple[int, str]]:
    """(line, target) of every link and image in the page's prose."""
    body = prose(page.read_text() if text is None else text)
    for pattern in (_INLINE_LINK, _REFERENCE, _HTML_LINK):
        for m in pattern.finditer(body):
            yield body.count("\n", 0, m.start()) + 1, m["target"]


# -- anchors --------------------------------------------------------------------------------------


def _markdown_extensions() -> tuple[list[str], dict[str, Any]]:
    """The Markdown extensions mkdocs renders with, as mkdocs.yml lists them."""
    names: list[str] = []
    configs: dict[str, Any] = {}
    for entry in yaml.safe_load(MKDOCS_YML.read_text()).get("markdown_extensions", []):
        if isinstance(entry, str):
            names.append(entry)
        else:
            ((name, config),) = entry.items()
            names.append(name)
            configs[name] = config or {}
    return names, configs


def _toc(tokens: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for token in tokens:
        yield token
        yield from _toc(token["children"])


def github_slug(text: str) -> str:
    """GitHub's anchor: lower case, punctuation dropped but `-` and `_`, each space a `-`."""
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def heading_anchors(text: str) -> tuple[set[str], set[str]]:
    """The anchors the headings of a page get in the mkdocs site, and on GitHub.

    The mkdocs side renders the page with Python-Markdown and the extensions of mkdocs.yml (the
    `toc` extension's default slugify: accents folded to ASCII, punctuation but `-` and `_`
    dropped, runs of spaces and hyphens made one `-`; repeats get `_1`, `_2`). GitHub keeps every
    space as a `-` and every non-ASCII letter, and numbers repeats `-1`, `-2`.
    """
    names, configs = _markdown_extensions()
    md = markdown.Markdown(extensions=names, extension_configs=configs)
    md.convert(text)
    tokens = list(_toc(md.toc_tokens))
    mkdocs_ids = {str(t["id"]) for t in tokens}
    github_ids: set[str] = set()
    seen: dict[str, int] = {}
    for token in tokens:
        slug = github_slug(html.unescape(str(token["name"])))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        github_ids.add(slug if n == 0 else f"{slug}-{n}")
    return mkdocs_ids, github_ids


def linkable_anchors(page: Path) -> set[str]:
    """Anchors that work both in the site and on GitHub: what both rules make of a heading."""
    return set(_linkable_anchors(page.read_text()))


@functools.cache  # by the page's text: each page is rendered once, not once per link to it
def _linkable_anchors(text: str) -> frozenset[str]:
    mkdocs_ids, github_ids = heading_anchors(text)
    return frozenset(mkdocs_ids & github_ids)


# -- links ----------------------------------------------------------------------------------------


def link_problems(page: Path, root: Path = ROOT, docs: Path = DOCS) -> list[str]:
    """One line per relative link of the page that does not resolve."""
    problems: list[str] = []
    for line, target in links(page):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):  # https:, mailto: ...: not fetched
            continue
        where = f"{page.relative_to(root).as_posix()}:{line}: {target}"
        path_part, _, anchor = target.partition("#")
        dest = page if not path_part else (page.parent / unquote(path_part)).resolve()
        if not dest.is_relative_to(root):
            problems.append(f"{where}: points outside the repository")
        elif page.is_relative_to(docs) and not dest.is_relative_to(docs):
            problems.append(
                f"{where}: a docs page can only link inside docs/ (the site holds nothing "
                "else); name the file as code instead"
            )
        elif not dest.exists():
            problems.append(f"{where}: no such file")
        elif anchor:
            if dest.suffix != ".md":
                problems.append(f"{where}: an anchor into a file that is not Markdown")
            elif anchor not in (known := linkable_anchors(dest)):
                problems.append(
                    f"{where}: no heading of {dest.relative_to(root).as_posix()} makes this "
                    f"anchor (in both mkdocs and GitHub); it has: {', '.join(sorted(known))}"
                )
    return problems


# -- config examples ------------------------------------------------------------------------------


def as_config(data: object) -> tuple[dict[str, Any], bool]:
    """The document a YAML example is loaded as, and whether the example is a whole config.

    A mapping with `keys` and at least one other section is a whole config: loaded as written.
    Anything else is a fragment: a list of key entries, only `keys:`, or sections without keys.
    A fragment is completed with what it leaves out (a key; a key entry's `listen` and `source`;
    a `vault:` section its keys need) and then loaded.
    """
    if isinstance(data, list):
        data = {"keys": data}
    if not isinstance(data, dict):
        raise ConfigError([f"(top level): a mapping or a list of keys, got {type(data).__name__}"])
    if "keys" in data and len(data) > 1:
        return data, True
    doc = dict(data)
    entries = doc.get("keys", [FRAGMENT_KEY])
    if isinstance(entries, list):
        entries = [{**FRAGMENT_KEY_DEFAULTS, **e} if isinstance(e, dict) else e for e in entries]
        doc["keys"] = entries
        needs_vault = any(
            isinstance(e, dict)
            and isinstance(e["source"], dict)
            and VAULT_SOURCES & set(e["source"])
            for e in entries
        )
        if needs_vault and "vault" not in doc:
            doc["vault"] = {}
    return doc, False


def load_example(fence: Fence) -> None:
    """Load a YAML example with the real config loader; raise ConfigError when it does not load."""
    try:
        data = yaml.safe_load(fence.text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"invalid YAML: {exc}"]) from None
    doc, _ = as_config(data)
    parse_config(doc, environ=ENVIRON)


def yaml_examples(pages: Iterable[Path]) -> list[Fence]:
    return [f for page in pages for f in fences(page) if f.lang in ("yaml", "yml")]


EXAMPLES = yaml_examples(PAGES)


# -- the docs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", LINKED_PAGES, ids=rel)
def test_every_relative_link_in_the_docs_resolves(page: Path) -> None:
    problems = link_problems(page)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("example", [f for f in EXAMPLES if not f.marked_not_a_config], ids=str)
def test_every_config_example_in_the_docs_loads(example: Fence) -> None:
    try:
        load_example(example)
    except ConfigError as exc:
        pytest.fail(
            f"{example}: the config example does not load:\n  "
            + "\n  ".join(exc.problems)
            + "\n(if it is not a sidecar config, put <!-- not-a-config --> on the line before it)"
        )


def test_the_docs_site_builds_with_mkdocs_strict(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "mkdocs", "build", "--strict"]
    command += ["--config-file", str(MKDOCS_YML), "--site-dir", str(tmp_path / "site")]
    result = subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").exists()


def test_the_readme_starts_with_exactly_the_two_set_up_commands() -> None:
    lines = README.read_text().splitlines()
    block = lines[lines.index("```sh") + 1 : lines.index("```")]
    assert [line.split("#")[0].strip() for line in block] == ["make demo", "make test"]
    assert lines.index("```sh") <= 3


def test_the_readme_stays_short() -> None:
    count = len(README.read_text().splitlines())
    assert count <= README_MAX_LINES, f"README.md has {count} lines: move detail into docs/"


def test_the_readme_links_every_docs_page() -> None:
    linked = {(README.parent / unquote(t.partition("#")[0])).resolve() for _, t in links(README)}
    missing = [rel(page) for page in sorted(DOCS.glob("*.md")) if page.resolve() not in linked]
    assert not missing, f"README.md does not link {', '.join(missing)}"


# -- the checkers themselves ----------------------------------------------------------------------


def test_the_link_check_catches_a_missing_file_and_a_missing_anchor(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\n## Known heading\n\nSee [x](#known-heading).\n")
    page = docs / "b.md"
    page.write_text(
        "# B\n\n[fine](a.md#known-heading) [gone](c.md) [bad anchor](a.md#unknown)\n"
        "`[in code](nowhere.md)` [web](https://example.com/x.md)\n\n"
        "```md\n[in a fence](nowhere.md)\n```\n\n[outside](../README.md) [self](#b)\n"
    )
    (tmp_path / "README.md").write_text("# R\n")
    problems = link_problems(page, root=tmp_path, docs=docs)
    assert [p.split(": ")[1] for p in problems] == ["c.md", "a.md#unknown", "../README.md"]
    assert "no such file" in problems[0] and "known-heading" in problems[1]
    assert link_problems(docs / "a.md", root=tmp_path, docs=docs) == []


def test_an_anchor_must_be_what_both_mkdocs_and_github_make_of_the_heading() -> None:
    text = (
        "# The test exchange (`sidecar.devtools.exchange`)\n\n## 1. Import the secret (once)\n\n"
        "## Rotation\n\n## Rotation\n\n## A & B\n"
    )
    mkdocs_ids, github_ids = heading_anchors(text)
    both = mkdocs_ids & github_ids
    assert "the-test-exchange-sidecardevtoolsexchange" in both
    assert "1-import-the-secret-once" in both
    assert "rotation" in both
    assert {"rotation_1", "a-b"} <= mkdocs_ids and {"rotation-1", "a--b"} <= github_ids
    assert not {"rotation_1", "rotation-1", "a-b", "a--b"} & both


def test_only_a_config_example_marked_as_such_is_left_out(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- not-a-config: Helm values -->\n```yaml\nbot: {image: x}\n```\n\n"
        "<!-- a comment that is not the marker -->\n```yaml\nbot: {image: x}\n```\n"
    )
    marked, unmarked = yaml_examples([page])
    assert marked.marked_not_a_config and not unmarked.marked_not_a_config
    with pytest.raises(ConfigError, match="bot"):
        load_example(unmarked)


def test_a_fragment_is_completed_but_a_whole_config_must_load_as_written(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```yaml\nkeys:\n  - name: reader\n    policy: read-only\n```\n\n"  # fragment
        "```yaml\n  - name: t\n    source: {vault_transit: {key: t, api_key: k}}\n"
        "    policy: futures-only\n```\n\n"  # a list of key entries that needs a vault section
        "```yaml\nvault: {auth: {method: token}}\n```\n\n"  # a section
        "```yaml\nlogging: {format: text}\nkeys:\n  - name: reader\n    policy: read-only\n```\n"
        "\n```yaml\nkeys:\n  - name: reader\n    listen: 127.0.0.1:0\n"
        "    source: {env: {}}\n    policy: yolo\n```\n"
    )
    keys_only, key_list, section, whole, bad_preset = yaml_examples([page])
    for fragment in (keys_only, key_list, section):
        load_example(fragment)
    with pytest.raises(ConfigError, match=r"keys\[0\]\.(listen|source)"):
        load_example(whole)  # a whole config gets nothing filled in
    with pytest.raises(ConfigError, match="unknown preset 'yolo'"):
        load_example(bad_preset)
