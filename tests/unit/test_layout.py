"""The formatter decides layout: `# fmt: skip` / `# fmt: off` only with a reason on the line."""

import re

from ..conftest import ROOT

SUPPRESSION = re.compile(r"#\s*fmt:\s*(?:skip|off)\b(?P<rest>.*)$")


def test_formatter_suppressions_give_their_reason():
    unexplained = []
    for path in sorted(ROOT.glob("*/**/*.py")):
        if path.relative_to(ROOT).parts[0] not in ("pipeline", "tests", "scripts"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            found = SUPPRESSION.search(line)
            if found and not re.search(r"#\s*\w", found["rest"]):
                unexplained.append(f"{path.relative_to(ROOT)}:{number}")
    assert unexplained == [], "add `# <reason>` after the suppression, or let ruff format it"
