"""The worked example in docs/development.md ("Adding a source kind") works as written.

The example module is copied into a copy of the package with its one registration line, and that
copy loads a config naming the new kind, prints it in check-config and fills a slot from it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEV = ROOT / "docs" / "development.md"


def _blocks(section: str) -> list[str]:
    text = DEV.read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, re.S)


CHECK = """
import asyncio, sys
from pathlib import Path
from sidecar.config import parse_config
from sidecar.ops.report import render_config_report
from sidecar.credentials.rotation import Rotation
from sidecar.credentials.slot import KeySlot
from sidecar.credentials.sources.base import SourceContext

tmp = Path(sys.argv[1])
(tmp / "k").write_text("the-key\\n")
(tmp / "s").write_text("the-secret\\n")
config = parse_config({"keys": [{
    "name": "bot", "listen": "127.0.0.1:0", "policy": "read-only",
    "source": {"two_files": {"key_file": str(tmp / "k"), "secret_file": str(tmp / "s")}},
}]}, environ={})
print(render_config_report(config))
key = config.keys[0]
slot = KeySlot("bot")
source = key.source.source_kind.build(key.source.spec, slot, Rotation(None), SourceContext({}))
asyncio.run(source.poll())
print("slot:", slot.current().api_key, slot.version)
"""


def test_the_documented_source_kind_is_one_module_and_one_registration_line(
    tmp_path: Path,
) -> None:
    module, registration = _blocks("Adding a source kind")
    copy = tmp_path / "pkg"
    shutil.copytree(
        ROOT / "sidecar", copy / "sidecar", ignore=shutil.ignore_patterns("__pycache__")
    )
    sources = copy / "sidecar" / "credentials" / "sources"
    (sources / "two_files.py").write_text(module)
    registry = sources / "registry.py"
    line = next(x for x in registration.splitlines() if x.startswith("KINDS"))
    text = registry.read_text()
    text = re.sub(r"^KINDS: .*$", line, text, flags=re.M)
    text = text.replace("import env, file,", "import env, file, two_files,")
    registry.write_text(text)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHECK), str(tmp_path)],
        cwd=tmp_path,  # not the checkout: `python -c` puts the working directory first
        env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"source: files {tmp_path}/k, {tmp_path}/s" in result.stdout
    assert "slot: the-key files" in result.stdout
