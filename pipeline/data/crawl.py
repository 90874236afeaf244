"""Crawl university notice sites: list pages (with pagination) -> detail pages -> raw notices.

Run: llmops crawl [--sites configs/sites/example.yaml] [--out data/raw]
     (or, as a pipeline stage: dvc unfreeze crawl && dvc repro)

The stage is frozen in dvc.yaml, so the offline demo and CI never touch the network (and
`dvc status` stays quiet). To crawl as part of the pipeline, point params.yaml:crawl.sites
at your sites file and, in dvc.yaml, replace the stage's `frozen: true` with
`always_changed: true`: every `dvc repro` then crawls, fetching only what changed since the
last crawl, and `prepare` reruns only when the notices did change. (`dvc unfreeze crawl`
alone runs it only when the crawler's code, the sites files or params.crawl change.)

Sites are described in YAML (configs/sites/): start URLs, CSS selectors for the links on a
list page, the next-page link, and a detail page's title, date, department and body, and how
many list pages to follow. The crawler is polite and incremental:
- robots.txt is obeyed (urllib.robotparser; an unreachable robots.txt means "disallow all",
  as RFC 9309 asks), including its Crawl-delay up to `max_crawl_delay_s` (a host asking for
  longer is not crawled); requests to one host are spaced by `delay_s`;
- a site stays on its own hosts (`hosts`, by default those of its start URLs): links and
  redirects elsewhere are not followed, and a URL carrying credentials (user:password@) is
  never requested or written down;
- 5xx answers, timeouts and dropped connections are retried with exponential backoff; a
  response larger than `max_bytes`, or not complete `timeout_s` after the request began
  (however slowly it trickles), is abandoned while streaming;
- a crawl stopped by SIGTERM or an error keeps every notice fetched so far;
- the encoding comes from the HTTP header, else the page's <meta charset>, else
  charset-normalizer's guess; GBK and GB2312 are read as their superset GB18030;
- a detail page is asked for with If-None-Match / If-Modified-Since from the last crawl, and
  a page whose extracted content hash is unchanged is not written again.
New notices are appended to OUT/crawled.jsonl (updated ones replaced in place), each with its
source `url` and `fetched_at`; the crawl state (URL -> content hash, ETag, Last-Modified) is
kept next to it in OUT/.crawl/state.json and commits with it, and pages that do not make a
valid notice (see pipeline/data/schema.py) go to OUT/.crawl/rejected.jsonl with the rules
they break, so nothing is lost and `prepare` never sees them.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import re
import signal
import sys
import threading
import time
import urllib.robotparser
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlsplit

import yaml
from pydantic import Field

from pipeline import paths
from pipeline.commands import arg, command
from pipeline.config import Section
from pipeline.data.clean import boilerplate_pattern, html_to_text, strip_boilerplate
from pipeline.data.schema import CATEGORIES, check_notice
from pipeline.io import (
    DataError,
    UserError,
    atomic_write_text,
    dumps,
    read_json_dict,
    read_jsonl,
    run_stage,
    write_jsonl,
)
from pipeline.paths import CRAWL_STATE_DIR, CRAWLED_NOTICES

OUT_NAME = CRAWLED_NOTICES.name
STATE_DIR = CRAWL_STATE_DIR.name  # next to the output, where a glob for *.jsonl does not reach


class Selectors(Section):
    """CSS selectors (BeautifulSoup `select`). `links` and `next` apply to list pages."""

    links: str
    title: str
    body: str
    next: str = ""
    date: str = ""
    department: str = ""
    location: str = ""


class Site(Section):
    name: str  # a short slug; notice ids are `<name>-<hash of the URL>`
    category: str  # every notice under these start URLs has this category
    start_urls: list[str]
    selectors: Selectors
    max_pages: int = 5  # list pages followed from each start URL
    department: str = ""  # when there is no department selector, or it finds nothing
    boilerplate: list[str] = Field(default_factory=list)  # extra line patterns to drop
    # the hosts (host or host:port) its pages may come from; empty: its start URLs' hosts
    hosts: list[str] = Field(default_factory=list)

    def allowed_hosts(self) -> set[str]:
        return set(self.hosts) or {_host(u) for u in self.start_urls}


class Settings(Section):
    user_agent: str = "FlywheelNoticeCrawler/0.1"
    delay_s: float = 1.0  # between two requests to the same host
    timeout_s: float = 10.0  # per request, connect to last byte, however slow the bytes
    retries: int = 3  # after the first try, on 5xx, timeouts and dropped connections
    backoff_s: float = 1.0  # wait before retry k: backoff_s * 2**k
    max_bytes: int = 2_000_000
    max_crawl_delay_s: float = 60.0  # a robots.txt Crawl-delay above this: the host is skipped
    max_redirects: int = 5


class SitesFile(Section):
    sites: list[Site]
    settings: Settings = Field(default_factory=Settings)


def load_sites(path: Path) -> SitesFile:
    """The sites YAML, checked like params.yaml: unknown keys and wrong types name the key."""
    from pipeline.config import ParamsError, validated

    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        parsed = validated(SitesFile, raw if isinstance(raw, dict) else {"sites": raw}, "")
    except FileNotFoundError:
        raise DataError(
            path, None, "sites file not found (see configs/sites/example.yaml)"
        ) from None
    except yaml.YAMLError as exc:
        raise DataError(path, None, f"invalid YAML: {exc}") from None
    except ParamsError as exc:
        raise DataError(path, None, str(exc).removeprefix("params.yaml:")) from None
    names = [s.name for s in parsed.sites]
    for i, s in enumerate(parsed.sites):
        if s.category not in CATEGORIES:
            raise DataError(
                path,
                None,
                f"sites[{i}].category: {s.category!r} is not one of {', '.join(CATEGORIES)}",
            )
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", s.name) or names.count(s.name) > 1:
            raise DataError(
                path,
                None,
                f"sites[{i}].name: {s.name!r} must be a unique slug "
                "(lower-case letters, digits, - and _)",
            )
    return parsed


class FetchError(Exception):
    """A page that could not be fetched, after retries where retrying makes sense."""


def _host(url: str) -> str:
    """host[:port] of a URL, lower-case, without credentials."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return f"{host}:{parts.port}" if parts.port else host


def off_limits(url: str, hosts: set[str]) -> str | None:
    """Why `url` must not be requested for a site on `hosts`, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return f"not http(s): {parts.scheme or 'no scheme'}"
    if parts.username is not None or parts.password is not None:
        return "credentials in the URL: never sent"
    if _host(url) not in hosts:
        return f"another host ({_host(url)}), not one of the site's ({', '.join(sorted(hosts))})"
    return None


@dataclass
class Page:
    url: str
    status: int
    headers: dict
    content: bytes


_CHARSET_ALIASES = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030"}
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)


def decode(content: bytes, content_type: str | None) -> str:
    """Bytes -> text: the charset declared in the Content-Type header, else in a <meta> tag,
    else charset-normalizer's best guess (UTF-8 when it has none)."""
    declared = re.search(r"charset=[\"']?([A-Za-z0-9_.:-]+)", content_type or "", re.I)
    meta = _META_CHARSET.search(content[:4096])
    for charset in (declared and declared.group(1), meta and meta.group(1).decode()):
        if charset:
            try:
                return content.decode(_CHARSET_ALIASES.get(charset.lower(), charset))
            except (LookupError, UnicodeDecodeError):
                continue  # a wrong declaration: fall through to detection
    from charset_normalizer import from_bytes

    best = from_bytes(content).best()
    return str(best) if best is not None else content.decode("utf-8", errors="replace")


class Fetcher:
    """HTTP GET with robots.txt, a per-host rate limit, retries with backoff and a size cap."""

    def __init__(self, settings: Settings, sleep=time.sleep, log=print):
        import requests

        self.s = settings
        self.session = requests.Session()
        self.session.headers["User-Agent"] = settings.user_agent
        self.sleep = sleep
        self.log = log
        self.last_request: dict[str, float] = {}
        self.robots: dict[str, urllib.robotparser.RobotFileParser] = {}

    def _throttle(self, host: str) -> None:
        rp = self.robots.get(host)
        delay = max(self.s.delay_s, float((rp and rp.crawl_delay(self.s.user_agent)) or 0))
        wait = self.last_request.get(host, -1e9) + delay - time.monotonic()
        if wait > 0:
            self.sleep(wait)
        self.last_request[host] = time.monotonic()

    def _once(self, url: str, headers: dict) -> Page:
        """One response, read within timeout_s of the request however it trickles in."""
        import requests

        self._throttle(urlsplit(url).netloc)
        started = time.monotonic()
        with self.session.get(
            url, headers=headers, timeout=self.s.timeout_s, stream=True, allow_redirects=False
        ) as r:
            length = int(r.headers.get("Content-Length") or 0)
            if length > self.s.max_bytes:
                raise FetchError(f"{length} bytes, over the {self.s.max_bytes}-byte cap")
            chunks, size = [], 0
            # read1: whatever has arrived, so a body dripping a byte at a time meets the
            # deadline instead of filling a 64 KiB buffer for hours
            while chunk := r.raw.read1(65536, decode_content=True):
                size += len(chunk)
                if size > self.s.max_bytes:
                    raise FetchError(f"over the {self.s.max_bytes}-byte cap, abandoned")
                if time.monotonic() - started > self.s.timeout_s:
                    raise requests.Timeout(f"body not complete within {self.s.timeout_s} s")
                chunks.append(chunk)
            return Page(r.url, r.status_code, dict(r.headers), b"".join(chunks))

    def _follow(self, url: str, headers: dict, hosts: set[str]) -> Page:
        """The response at the end of up to max_redirects redirects, each on `hosts`."""
        for _ in range(self.s.max_redirects + 1):
            page = self._once(url, headers)
            location = page.headers.get("Location")
            if page.status not in (301, 302, 303, 307, 308) or not location:
                return page
            target = urldefrag(urljoin(url, location)).url
            if why := off_limits(target, hosts):
                raise FetchError(f"redirect to {_safe(target)} not followed: {why}")
            url = target
        raise FetchError(f"more than {self.s.max_redirects} redirects")

    def get(self, url: str, headers: dict | None = None, hosts: set[str] | None = None) -> Page:
        """The page (any status below 500), or FetchError once retries are spent. Redirects
        are followed only onto `hosts` (default: the URL's own host)."""
        import requests

        hosts = hosts or {_host(url)}
        if why := off_limits(url, hosts):
            raise FetchError(f"not requested: {why}")
        error = ""
        for attempt in range(self.s.retries + 1):
            if attempt:
                self.sleep(self.s.backoff_s * 2 ** (attempt - 1))
            try:
                page = self._follow(url, headers or {}, hosts)
            except (requests.Timeout, requests.ConnectionError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                continue
            except requests.RequestException as exc:
                raise FetchError(f"{type(exc).__name__}: {exc}") from None
            if page.status < 500:
                return page
            error = f"HTTP {page.status}"
        raise FetchError(f"{error} (after {self.s.retries + 1} attempts)")

    def allowed(self, url: str) -> bool:
        """robots.txt's verdict for our user agent (fetched once per host)."""
        parts = urlsplit(url)
        rp = self.robots.get(parts.netloc)
        if rp is None:
            rp = urllib.robotparser.RobotFileParser()
            try:
                page = self.get(f"{parts.scheme}://{parts.netloc}/robots.txt")
                if page.status in (401, 403):
                    switch(rp, allow=False)
                elif page.status >= 400:
                    switch(rp, allow=True)
                else:
                    rp.parse(decode(page.content, page.headers.get("Content-Type")).splitlines())
                    asked = float(rp.crawl_delay(self.s.user_agent) or 0)
                    if asked > self.s.max_crawl_delay_s:
                        switch(rp, allow=False)
                        self.log(
                            f"crawl: robots.txt of {parts.netloc} asks for a Crawl-delay of "
                            f"{asked:g} s, more than settings.max_crawl_delay_s "
                            f"({self.s.max_crawl_delay_s:g}): not crawling that host",
                            file=sys.stderr,
                        )
            except FetchError as exc:
                switch(rp, allow=False)  # unreachable: assume complete disallow (RFC 9309)
                self.log(
                    f"crawl: robots.txt of {parts.netloc} unreachable ({exc}): "
                    "not crawling that host",
                    file=sys.stderr,
                )
            self.robots[parts.netloc] = rp
        return rp.can_fetch(self.s.user_agent, url)


_DATE = re.compile(r"(\d{4})\s*[-/年.]\s*(\d{1,2})\s*[-/月.]\s*(\d{1,2})")
_DEADLINE = re.compile(
    r"截止(?:日期|时间)?[为是至到：:\s]*(\d{4}年\d{1,2}月\d{1,2}日)|(\d{4}年\d{1,2}月\d{1,2}日)(?:之?前|截止)"
)
_LOCATION = re.compile(
    r"(?:地点|地址|考场)(?:设在|设于|为|是|在|：|:)\s*([^，。；;,、\s]{2,30})"
    r"|(?:在|于|至|到)([^，。；;,、\s在于至到]{2,20}(?:室|厅|馆|中心|楼|场|礼堂|公寓))"
)


_LABEL = re.compile(r"^(?:来源|发布单位|发布部门|发布者|发文单位|作者)\s*[：:]\s*")


def iso_date(text: str) -> str:
    """The first date in `text` as YYYY-MM-DD, or `text` unchanged (the schema then says why)."""
    m = _DATE.search(text)
    if not m:
        return text
    try:
        return dt.date(*map(int, m.groups())).isoformat()
    except ValueError:
        return text


def find_deadline(body: str) -> str | None:
    """The date a notice says something must be done by (`YYYY年M月D日 前`, `截止...`)."""
    m = _DEADLINE.search(body)
    return (m.group(1) or m.group(2)) if m else None


def find_location(body: str) -> str | None:
    m = _LOCATION.search(body)
    return (m.group(1) or m.group(2)) if m else None


class MalformedPage(Exception):
    """A detail page the selectors cannot read."""


def extract(site: Site, html: str) -> dict:
    """title, publish_date, department, body (cleaned text), deadline, location of one
    detail page; MalformedPage when the title or body selector finds nothing."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    sel = site.selectors

    def text(selector: str) -> str:
        tag = soup.select_one(selector) if selector else None
        return html_to_text(tag) if tag is not None else ""

    title = text(sel.title).replace("\n", " ")
    if not title:
        raise MalformedPage(f"no element matches selectors.title {sel.title!r}")
    node = soup.select_one(sel.body)
    if node is None:
        raise MalformedPage(f"no element matches selectors.body {sel.body!r}")
    body = strip_boilerplate(html_to_text(node), boilerplate_pattern(site.boilerplate))
    if not body:
        raise MalformedPage(f"selectors.body {sel.body!r} holds no text")
    return {
        "title": title,
        "publish_date": iso_date(text(sel.date)),
        "department": _LABEL.sub("", text(sel.department)) or site.department,
        "body": body,
        "deadline": find_deadline(body),
        "location": text(sel.location) or find_location(body),
        "category": site.category,
    }


def content_hash(record: dict) -> str:
    keys = ("title", "publish_date", "department", "body", "deadline", "location", "category")
    return hashlib.sha256(dumps({k: record.get(k) for k in keys}).encode()).hexdigest()


@dataclass
class Summary:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    robots: int = 0
    off_site: int = 0  # links to other hosts, or carrying credentials: never requested
    rejected: int = 0
    list_pages: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (url, why)

    def line(self, out: Path) -> str:
        return (
            f"crawl: {self.new} new, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.robots} skipped by robots.txt, {len(self.failed)} failed, "
            f"{self.rejected} rejected by the notice schema ({self.list_pages} list pages, "
            f"{self.off_site} off-site links not followed) -> {out / OUT_NAME}"
        )


def _safe(url: str) -> str:
    """`url` without any user:password@, for logs and reports."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


@contextlib.contextmanager
def _sigterm_exits():
    """SIGTERM (a CI job cancelled, a pod evicted) raises SystemExit, so `finally` blocks run
    and the crawl keeps its progress; in the main thread only, where Python allows it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def switch(rp: urllib.robotparser.RobotFileParser, allow: bool) -> None:
    """RobotFileParser's all-or-nothing rules, as its own read() sets them on 401/403 (none
    allowed) and other 4xx (all allowed); typeshed does not declare the two attributes."""
    vars(rp)["allow_all" if allow else "disallow_all"] = True


def _load_state(path: Path) -> dict:
    return read_json_dict(path) if path.exists() else {"pages": {}}


def crawl(config: SitesFile, out_dir: Path, fetcher: Fetcher | None = None, log=print) -> Summary:
    """Crawl every site into out_dir/crawled.jsonl (see the module docstring)."""
    out_dir = Path(out_dir)
    run = _Crawl(config, out_dir, fetcher or Fetcher(config.settings, log=log), log)
    try:  # whatever happens (an error, SIGTERM), keep what was crawled so far
        with _sigterm_exits():
            for site in config.sites:
                for start in site.start_urls:
                    run.follow(site, start)
    finally:
        run.save()
    log(run.summary.line(out_dir))
    return run.summary


class _Crawl:
    """One crawl's progress: the records, the per-page state, what was seen and rejected."""

    def __init__(self, config: SitesFile, out_dir: Path, fetcher: Fetcher, log) -> None:
        self.out_dir, self.fetcher, self.log = out_dir, fetcher, log
        self.out_file, self.state_file = out_dir / OUT_NAME, out_dir / STATE_DIR / "state.json"
        self.state = _load_state(self.state_file)
        self.records = (
            {r["id"]: r for r in read_jsonl(self.out_file)} if self.out_file.exists() else {}
        )
        self.rejected: list[dict] = []
        self.summary, self.seen = Summary(), set[str]()
        self.fingerprint = {
            site.name: hashlib.sha256(dumps(site.model_dump()).encode()).hexdigest()[:16]
            for site in config.sites
        }

    def fail(self, url: str, why: str) -> None:
        self.summary.failed.append((_safe(url), why))
        self.log(f"crawl: failed {_safe(url)}: {why}", file=sys.stderr)

    def reachable(self, site: Site, url: str) -> bool:
        """On the site's hosts and allowed by robots.txt; counted when not."""
        why = off_limits(url, site.allowed_hosts())
        if why:
            self.summary.off_site += 1
            self.log(f"crawl: {site.name}: not following {_safe(url)}: {why}")
            return False
        if not self.fetcher.allowed(url):
            self.summary.robots += 1
            return False
        return True

    def follow(self, site: Site, url: str | None) -> None:
        """A list page, its notices, then the next list page, up to max_pages."""
        from bs4 import BeautifulSoup

        pages = 0
        while url and pages < site.max_pages and url not in self.seen:
            self.seen.add(url)
            pages += 1
            if not self.reachable(site, url):
                return
            try:
                page = self.fetcher.get(url, hosts=site.allowed_hosts())
            except FetchError as exc:
                return self.fail(url, str(exc))
            if page.status != 200:
                return self.fail(url, f"HTTP {page.status}")
            html = decode(page.content, page.headers.get("Content-Type"))
            soup = BeautifulSoup(html, "html.parser")
            links = [
                urldefrag(urljoin(page.url, str(a["href"]))).url
                for a in soup.select(site.selectors.links)
                if a.get("href")
            ]
            self.summary.list_pages += 1
            self.log(f"crawl: {site.name} list page {pages}: {len(links)} links ({url})")
            for link in links:
                self.detail(site, link)
            nxt = soup.select_one(site.selectors.next) if site.selectors.next else None
            href = nxt.get("href") if nxt is not None else None
            url = urljoin(page.url, str(href)) if href else None

    def detail(self, site: Site, url: str) -> None:
        """A notice page: fetched conditionally, extracted, checked, kept when new or changed."""
        if url in self.seen:
            return
        self.seen.add(url)
        if not self.reachable(site, url):
            return
        prev = self.state["pages"].get(url, {})
        if prev.get("site_sha256") != self.fingerprint[site.name]:
            prev = {}  # the site's selectors or defaults changed: read the page afresh
        validators = (("If-None-Match", "etag"), ("If-Modified-Since", "last_modified"))
        headers = {k: prev[v] for k, v in validators if prev.get(v)}
        try:
            page = self.fetcher.get(url, headers, site.allowed_hosts())
        except FetchError as exc:
            return self.fail(url, str(exc))
        if page.status == 304 and prev:
            self.summary.unchanged += 1
            return
        if page.status != 200:
            return self.fail(url, f"HTTP {page.status}")
        try:
            found = extract(site, decode(page.content, page.headers.get("Content-Type")))
        except MalformedPage as exc:
            return self.fail(url, f"malformed page: {exc}")
        digest = content_hash(found)
        nid = f"{site.name}-{hashlib.sha256(url.encode()).hexdigest()[:12]}"
        # no timestamps here: an unchanged site leaves the state, and so data/raw, unchanged
        self.state["pages"][url] = {
            "id": nid,
            "site_sha256": self.fingerprint[site.name],
            "content_sha256": digest,
            "etag": page.headers.get("ETag"),
            "last_modified": page.headers.get("Last-Modified"),
        }
        if prev.get("content_sha256") == digest:
            self.summary.unchanged += 1
            return
        self.keep(url, nid, digest, found, site)

    def keep(self, url: str, nid: str, digest: str, found: dict, site: Site) -> None:
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        record = {
            "id": nid,
            **found,
            "source": f"crawl:{site.name}",
            "url": url,
            "fetched_at": now,
            "content_sha256": digest,
        }
        problems = check_notice(record)
        if problems:
            self.summary.rejected += 1
            self.rejected.append(record | {"problems": problems})
            self.log(f"crawl: rejected {url}: {'; '.join(problems)}", file=sys.stderr)
            return
        if nid in self.records:
            self.summary.updated += 1
        else:
            self.summary.new += 1
        self.records[nid] = record

    def save(self) -> None:
        """The records and the state, atomically; rejected pages appended for a person."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_jsonl(self.out_file, self.records.values())
        atomic_write_text(self.state_file, dumps(self.state))
        if self.rejected:
            with open(self.out_dir / STATE_DIR / "rejected.jsonl", "a", encoding="utf-8") as fh:
                fh.writelines(
                    f"{json.dumps(r, ensure_ascii=False, sort_keys=True)}\n" for r in self.rejected
                )


@command(
    "crawl",
    help="crawl notice sites into JSONL (incremental, polite; see configs/sites/example.yaml)",
    args=[
        arg("--sites", help="sites YAML (default: params.yaml:crawl.sites)"),
        arg("--out", help=f"output directory (default: {paths.RAW_DIR})"),
    ],
)
def main(args: argparse.Namespace | None = None) -> int:
    """`llmops crawl`: the sites file from --sites (default params.crawl.sites) into --out."""
    from pipeline.config import load_params
    from pipeline.paths import RAW_DIR

    sites = getattr(args, "sites", None) or load_params().crawl.sites
    out = Path(getattr(args, "out", None) or RAW_DIR)
    summary = crawl(load_sites(Path(sites)), out)
    nothing = not (summary.new or summary.updated or summary.unchanged)
    if nothing and (summary.failed or summary.robots):
        raise UserError(
            f"crawl: nothing could be crawled from {sites} ({len(summary.failed)} pages failed, "
            f"{summary.robots} disallowed or on hosts whose robots.txt is unreachable); check "
            "the start URLs, the selectors and your network, then run `llmops crawl` again"
        )
    return 0


if __name__ == "__main__":
    run_stage(main)
