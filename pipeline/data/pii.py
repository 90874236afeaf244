"""Scrub personal data from text before people or models see it: e-mail addresses, Chinese
resident ID card numbers, phone numbers (Chinese mobile and landline, international) and
student numbers. Each match becomes a typed placeholder such as `[PHONE]`, so an annotator
still sees that a number was there and a model learns no one's number.

Used on sampled request logs (`llmops feedback sample`); the data-cleaning stage reuses it.
Patterns err on the side of scrubbing: a stray 11-digit number that looks like a mobile
number is removed too.
"""

from __future__ import annotations

import re
from collections import Counter

# A number must not be part of a longer digit run on either side.
_NO_DIGIT_BEFORE = r"(?<![0-9])"
_NO_DIGIT_AFTER = r"(?![0-9])"

# (kind, pattern), applied in this order: e-mail first (addresses hold digits), ID cards
# (18 characters) before phones (11 digits) before student numbers (8-12 digits).
PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("EMAIL", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")),
    # 6-digit region, birth date 18xx-20xx, 3-digit sequence, check digit (0-9 or X)
    (
        "ID",
        re.compile(
            _NO_DIGIT_BEFORE
            + r"[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx]"
            + _NO_DIGIT_AFTER
        ),
    ),
    # Chinese mobile: optional +86 / 0086, 1[3-9]x, 8 more digits, optionally grouped 3-4-4
    (
        "PHONE",
        re.compile(
            _NO_DIGIT_BEFORE + r"(?:(?:\+|00)86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}" + _NO_DIGIT_AFTER
        ),
    ),
    # Chinese landline: area code 0xx(x), optional brackets or dash, 7-8 digits, extension
    (
        "PHONE",
        re.compile(
            r"(?:\(0\d{2,3}\)|（0\d{2,3}）|"
            + _NO_DIGIT_BEFORE
            + r"0\d{2,3}-?)\d{7,8}(?:-\d{1,5})?"
            + _NO_DIGIT_AFTER
        ),
    ),
    # international numbers written with a leading +country code
    ("PHONE", re.compile(r"\+\d{1,3}[ -]?\d{2,4}(?:[ -]?\d{3,4}){2}" + _NO_DIGIT_AFTER)),
    # student numbers: after a label (学号, 学生证号, student ID/number), any 6-12 characters
    (
        "STUDENT_ID",
        re.compile(
            r"(?:(?<=学号)|(?<=学生证号)"
            r"|(?i:(?<=student id)|(?<=student number)|(?<=student no\.)))"
            r"[:：\s]*[A-Za-z]{0,2}\d{6,12}"
        ),
    ),
    # ... and unlabelled: an enrolment year (19xx/20xx) then 6-8 digits, standing alone
    # (10-12 digits in all, so compact dates such as 20261122 stay)
    ("STUDENT_ID", re.compile(_NO_DIGIT_BEFORE + r"(?:19|20)\d{2}\d{6,8}" + _NO_DIGIT_AFTER)),
]


def scrub(text: str, counts: Counter | None = None) -> str:
    """`text` with every match replaced by `[KIND]`; `counts[KIND]` grows by the matches."""
    for kind, pattern in PATTERNS:

        def repl(m: re.Match[str], kind: str = kind) -> str:
            # a labelled student number keeps its separator: "学号：[STUDENT_ID]"
            lead = re.match(r"[:：\s]*", m.group(0)).group(0)
            if counts is not None:
                counts[kind] += 1
            return f"{lead}[{kind}]"

        text = pattern.sub(repl, text)
    return text


def find(text: str) -> Counter:
    """How many of each kind `text` holds (what `scrub` would replace)."""
    counts: Counter = Counter()
    scrub(text, counts)
    return counts
