"""Copies suite tables into the README's Performance section, so its figures are the files' own.

    python benchmarks/publish.py benchmarks/results/suite_full.md [more.md ...]

The README holds one block per file between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``
(NAME: the file's stem, e.g. ``suite_full``); each block is replaced by the file's text. A file
without its markers in the README is an error, so nothing is published by accident.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def publish(readme: str, name: str, table: str) -> str:
    """``readme`` with the block named ``name`` replaced by ``table``."""
    pattern = re.compile(rf"(<!-- bench:{re.escape(name)} -->\n).*?(<!-- /bench:{re.escape(name)} -->)", re.S)
    if not pattern.search(readme):
        raise ValueError(f"README has no '<!-- bench:{name} -->' ... '<!-- /bench:{name} -->' block")
    return pattern.sub(lambda m: m.group(1) + table.rstrip("\n") + "\n" + m.group(2), readme)


def main(paths: list[str]) -> None:
    text = README.read_text()
    for path in map(Path, paths):
        text = publish(text, path.stem, path.read_text())
    README.write_text(text)


if __name__ == "__main__":
    main(sys.argv[1:])
