"""Scrub personal data from free text: typed placeholders in, counts out.

    text, counts = scrub("联系电话：13812345678，邮箱 zhang@example.edu.cn")
    # -> "联系电话：<PHONE>，邮箱 <EMAIL>", Counter({"phone": 1, "email": 1})

Kinds, in the order they are matched (earlier kinds win over later ones on the same digits):
- `id_card`: 18-digit PRC resident ID numbers whose check digit is right (GB 11643), so an
  arbitrary 18-digit number is left alone;
- `email`;
- `phone`: mainland mobiles (1[3-9] + 9 digits, optional +86/0086) and landlines with an
  area code (010-12345678, 0571 8888 8888, (021)12345678), with an optional extension;
- `student_number`: STUDENT_NUMBER by default (10 or 12 digits starting 19/20, how most
  universities number students by enrolment year); callers pass their own pattern, e.g. from
  params.yaml:prepare.student_number_pattern.
Digits glued to other digits never match, so dates (2025年12月7日), times and room numbers
(科技楼302室) survive.
"""

from __future__ import annotations

import re
from collections import Counter

PLACEHOLDERS = {
    "id_card": "<ID_CARD>",
    "email": "<EMAIL>",
    "phone": "<PHONE>",
    "student_number": "<STUDENT_NUMBER>",
}
STUDENT_NUMBER = r"(?:19|20)\d{8}(?:\d{2})?"

_ID_CARD = re.compile(
    r"(?<![0-9A-Za-z])[1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])\d{2}\d{3}[0-9Xx](?![0-9A-Za-z])"
)
_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
_PHONE = re.compile(
    r"(?<![0-9])(?:"
    r"(?:\+?86[- ]?|0086[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}"  # mobile, optionally 138-1234-5678
    r"|(?:\(0\d{2,3}\)|（0\d{2,3}）|0\d{2,3})[- ]?[2-9]\d{2,3}[- ]?\d{4}"  # landline
    r"(?:(?:转|-|ext\.?)\d{1,5})?"  # extension
    r")(?![0-9])"
)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_check_digit_ok(number: str) -> bool:
    """True when the 18th character is the GB 11643 check digit of the first 17."""
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == number[17].upper()


def scrub(text: str, student_number: str | None = STUDENT_NUMBER) -> tuple[str, Counter]:
    """(text with each match replaced by its kind's placeholder, matches per kind).
    `student_number` is a regex for a bare student number (None: do not scrub them)."""
    counts: Counter = Counter()

    def sub(pattern: re.Pattern, kind: str, text: str, keep=lambda m: False) -> str:
        def repl(m: re.Match) -> str:
            if keep(m):
                return m.group(0)
            counts[kind] += 1
            return PLACEHOLDERS[kind]

        return pattern.sub(repl, text)

    text = sub(_ID_CARD, "id_card", text, keep=lambda m: not id_check_digit_ok(m.group(0)))
    text = sub(_EMAIL, "email", text)
    text = sub(_PHONE, "phone", text)
    if student_number:
        text = sub(
            re.compile(rf"(?<![0-9A-Za-z])(?:{student_number})(?![0-9A-Za-z])"),
            "student_number",
            text,
        )
    return text, counts
