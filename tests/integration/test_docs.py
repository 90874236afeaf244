"""The documentation: a README that is a front page, a manual that builds strictly, links
that lead somewhere."""

import re
import subprocess
import sys
from pathlib import Path

from ..conftest import ROOT

BIN = Path(sys.executable).parent


def test_the_readme_is_a_front_page():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


def test_the_manual_builds_strictly_with_every_page_in_its_nav(tmp_path):
    proc = subprocess.run(
        [str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert 'not included in the "nav"' not in proc.stderr, proc.stderr
    built = {p.parent.name for p in (tmp_path / "site").glob("*/index.html")} | {"index"}
    assert built == {p.stem for p in (ROOT / "docs").glob("*.md")}


def test_links_from_the_readme_and_contributing_guide_resolve():
    for name in ("README.md", "CONTRIBUTING.md"):
        text = (ROOT / name).read_text()
        targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
        assert targets, name
        for target in targets:
            if "://" not in target:
                assert (ROOT / target).exists(), f"{name}: {target}"
