"""Text cleaning shared by the crawler and `prepare`: HTML -> text, Unicode normalisation,
whitespace, boilerplate lines.

`normalize` is NFKC with one exception: the full-width punctuation Chinese text is written
with (，：；！？（）) stays full-width, as in the shipped notices and the behaviour tests;
full-width letters, digits and spaces become ASCII (２０２５年 -> 2025年, ＠ -> @), so
dates, numbers and e-mail addresses read the same however they were typed.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

# Chinese punctuation NFKC would turn half-width; parked in the private-use area meanwhile.
_KEEP = "，：；！？（）"
_PARK = {ord(c): 0xE000 + i for i, c in enumerate(_KEEP)}
_UNPARK = {v: k for k, v in _PARK.items()}
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{2,}")

BLOCK_TAGS = (
    "p",
    "div",
    "li",
    "tr",
    "table",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "section",
    "article",
    "blockquote",
    "pre",
    "ul",
    "ol",
    "dd",
    "dt",
)
# Lines that are page furniture, not notice text (matched at the start of a short line).
BOILERPLATE = (
    r"打印本页",
    r"【?打印】?",
    r"【?关闭】?",
    r"关闭窗口",
    r"返回顶部",
    r"返回列表",
    r"上一篇",
    r"下一篇",
    r"上一条",
    r"下一条",
    r"分享到",
    r"责任编辑",
    r"编辑[：:]",
    r"审核[：:]",
    r"浏览次数",
    r"点击数",
    r"阅读次数",
    r"访问量",
    r"字号",
    r"当前位置",
    r"您的位置",
    r"版权所有",
    r"Copyright",
    r"©",
)
BOILERPLATE_MAX_CHARS = 60


def normalize(text: str) -> str:
    """NFKC (Chinese punctuation kept full-width), no invisible characters, single spaces,
    stripped lines, no empty lines."""
    text = unicodedata.normalize("NFKC", text.translate(_PARK)).translate(_UNPARK)
    text = text.translate(_INVISIBLE).replace("\r\n", "\n").replace("\r", "\n")
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n", "\n".join(line for line in lines if line))


def html_to_text(html: Any) -> str:
    """Visible text of an HTML string or BeautifulSoup element, one line per block element
    (inline tags such as <span> and <a> do not break a sentence)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser") if isinstance(html, (str, bytes)) else html
    for tag in soup.find_all(("script", "style", "noscript", "template")):
        tag.decompose()
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for tag in soup.find_all(BLOCK_TAGS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    return normalize(soup.get_text())


def boilerplate_pattern(extra: list[str] | tuple[str, ...] = ()) -> re.Pattern:
    return re.compile("|".join(f"(?:{p})" for p in (*BOILERPLATE, *extra)), re.IGNORECASE)


def strip_boilerplate(text: str, pattern: re.Pattern | None = None) -> str:
    """`text` without the short lines that start with page furniture (print, close, share,
    view counters, previous/next links, copyright)."""
    pattern = pattern or boilerplate_pattern()
    return "\n".join(
        line
        for line in text.split("\n")
        if not (len(line) <= BOILERPLATE_MAX_CHARS and pattern.match(line))
    )
