"""Assemble README.md from the section files in docs/readme/ (run: make readme).

Each area keeps its section next to its owners' other docs; README.md is generated so the pieces
cannot drift apart, and tests/test_readme.py fails when README.md is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = [
    "00-intro.md",
    "clients.md",
    "policy.md",
    "vault.md",
    "transit.md",
    "operations.md",
    "kubernetes.md",
    "exchange.md",
    "99-development.md",
]
HEADER = "<!-- Generated from docs/readme/ by docs/build_readme.py: edit those files. -->\n"


def assemble() -> str:
    parts = []
    for name in SECTIONS:
        path = ROOT / "docs" / "readme" / name
        if path.exists():
            parts.append(path.read_text().strip() + "\n")
    return "\n".join(parts) + "\n" + HEADER


def main() -> int:
    text = assemble()
    target = ROOT / "README.md"
    if "--check" in sys.argv:
        return 0 if target.read_text() == text else 1
    target.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
