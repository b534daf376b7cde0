"""The defect corpus (tests/defects/ and its defects.yml) and how to land it."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

DEFECTS = Path(__file__).parent / "defects"


def land_defects(raw: Path, defects: list[dict]) -> None:
    """Copy defect corpus files into RAW/<source>/defects/ (twice for `copies: 2`)."""
    for d in defects:
        folder = raw / d["source"] / "defects"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(DEFECTS / d["file"], folder / d["file"])
        for k in range(1, d.get("copies", 1)):
            stem, dot, ext = d["file"].partition(".")
            shutil.copy(DEFECTS / d["file"], folder / f"{stem} ({k}){dot}{ext}")


def defect_corpus() -> list[dict]:
    return yaml.safe_load((DEFECTS / "defects.yml").read_text(encoding="utf-8"))
