"""The crawler against a notice site served by the test on 127.0.0.1: pagination (and its
limit), a robots.txt disallow, a 500 that recovers on retry, a slow page that times out, a
malformed page, a GBK page, an oversized page, the per-host rate limit, and a second crawl
that downloads nothing unchanged (ETag / Last-Modified) and writes nothing again."""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipeline.data.crawl import Selectors, Settings, Site, SitesFile, crawl
from pipeline.io import read_json, read_jsonl

pytestmark = pytest.mark.integration

UA = "FlywheelTest/1.0"
SETTINGS = Settings(
    user_agent=UA, delay_s=0.1, timeout_s=0.6, retries=2, backoff_s=0.05, max_bytes=100_000
)
SELECTORS = Selectors(
    links="ul.news li a",
    next="a.next",
    title="div.article h1",
    date="div.article .date",
    department="div.article .dept",
    body="div.article div.content",
)


def detail(title: str, date: str, dept: str, paragraphs: list[str], charset="utf-8") -> str:
    paras = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f'<!DOCTYPE html><html><head><meta charset="{charset}"><title>{title}</title></head>'
        f'<body><div class="nav">当前位置：首页 &gt; 通知公告</div><div class="article">'
        f'<h1>{title}</h1><div class="meta"><span class="date">发布时间：{date}</span> '
        f'<span class="dept">{dept}</span></div><div class="content">{paras}'
        "<p>【打印本页】</p><p>关闭窗口</p></div></div></body></html>"
    )


def listing(links: list[str], next_href: str | None) -> str:
    items = "".join(f'<li><a href="{h}">通知</a></li>' for h in links)
    nxt = f'<a class="next" href="{next_href}">下页</a>' if next_href else ""
    head = '<html><head><meta charset="utf-8"></head>'
    return f'{head}<body><ul class="news">{items}</ul>{nxt}</body></html>'


class NoticeSite:
    """A small university notice site; records every request it gets."""

    def __init__(self):
        self.log: list[tuple[str, int]] = []  # (path, status answered)
        self.arrivals: list[float] = []  # when each request came in
        self.flaky_left = 1
        self.bodies = {
            "a1": detail(
                "关于2026年春季学期选课的通知",
                "2025-12-01",
                "教务处",
                [
                    "各位同学：2026年春季学期选课即将开始，请于2025年12月15日前登录教务系统完成选课。",
                    "选课咨询地点：综合服务大厅105室。",
                ],
            ),
            "flaky": detail(
                "关于开展实验室安全检查的通知",
                "2025年11月20日",
                "实验室与设备管理处",
                [
                    "各单位：学校将于近期开展实验室安全检查，请于2025年11月30日前完成自查并报送科技楼203室。"
                ],
            ),
            "lm": detail(
                "学术讲座：大语言模型的可解释性",
                "2025-11-18",
                "计算机学院",
                ["讲座时间：11月25日14:00，地点：图书馆三楼学术报告厅。欢迎师生参加。"],
            ),
        }
        gbk = [
            "请各位同学于2025年12月20日前通过校园缴费平台缴纳住宿费，"
            "逾期未缴者请到学生公寓3号楼值班室说明情况。"
        ]
        title = "关于缴纳2026年度住宿费的通知"
        self.gbk = detail(title, "2025-11-10", "后勤管理处", gbk, charset="gbk").encode("gbk")

    def handler(site) -> type[BaseHTTPRequestHandler]:  # the site is the closure
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def send(
                self,
                status: int,
                body: bytes = b"",
                headers: dict | None = None,
                length: bool = True,
            ) -> None:
                site.log.append((self.path, status))
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if length:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if status != 304:
                    # the client may have given up (timeout, size cap)
                    with contextlib.suppress(BrokenPipeError):
                        self.wfile.write(body)

            def do_GET(self):  # http.server's name
                site.arrivals.append(time.monotonic())
                html = {"Content-Type": "text/html; charset=utf-8"}
                p = self.path
                if p == "/robots.txt":
                    return self.send(
                        200, b"User-agent: *\nDisallow: /private/\n", {"Content-Type": "text/plain"}
                    )
                if p == "/tzgg/index.htm":
                    links = ["a1.htm", "gbk.htm", "flaky.htm", "/private/p1.htm"]
                    return self.send(200, listing(links, "index2.htm").encode(), html)
                if p == "/tzgg/index2.htm":
                    links = ["lm.htm", "slow.htm", "broken.htm", "big.htm", "a1.htm"]
                    return self.send(200, listing(links, "index3.htm").encode(), html)
                if p == "/tzgg/index3.htm":  # beyond max_pages: never fetched
                    return self.send(200, listing(["/private/p1.htm"], None).encode(), html)
                if p == "/tzgg/flaky.htm" and site.flaky_left:
                    site.flaky_left -= 1
                    return self.send(500, b"busy")
                if p in ("/tzgg/a1.htm", "/tzgg/flaky.htm"):
                    body = site.bodies[p[6:-4]].encode()
                    etag = f'"{hash(body) & 0xFFFFFFFF:x}"'
                    if self.headers.get("If-None-Match") == etag:
                        return self.send(304, headers={"ETag": etag})
                    return self.send(200, body, html | {"ETag": etag})
                if p == "/tzgg/lm.htm":
                    stamp = "Tue, 18 Nov 2025 08:00:00 GMT"
                    if self.headers.get("If-Modified-Since") == stamp:
                        return self.send(304)
                    return self.send(
                        200, site.bodies["lm"].encode(), html | {"Last-Modified": stamp}
                    )
                if p == "/tzgg/gbk.htm":  # charset only in <meta>, GBK bytes
                    return self.send(200, site.gbk, {"Content-Type": "text/html"})
                if p == "/tzgg/slow.htm":
                    time.sleep(2.0)
                    return self.send(200, site.bodies["a1"].encode(), html)
                if p == "/tzgg/broken.htm":
                    return self.send(
                        200, b"<html><body><div class='nav'>\xe5\xbd\x93\xe5\x89\x8d<div", html
                    )
                if p == "/tzgg/big.htm":  # no Content-Length: the cap must stop the stream
                    return self.send(200, b"<p>" + b"x" * 400_000, html, length=False)
                return self.send(404, b"not found")

        return Handler


@contextlib.contextmanager
def serving(s):
    """`s` (a test site with a `handler()`) served on 127.0.0.1 while the block runs; its URL
    is `s.base`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), s.handler())
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    s.base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield s
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def site():
    with serving(NoticeSite()) as s:
        yield s


def config(base: str) -> SitesFile:
    return SitesFile(
        sites=[
            Site(
                name="test-jwc",
                category="教务",
                max_pages=2,
                department="教务处",
                start_urls=[f"{base}/tzgg/index.htm"],
                selectors=SELECTORS,
            )
        ],
        settings=SETTINGS,
    )


def run(site: NoticeSite, out) -> tuple:
    lines: list[str] = []
    summary = crawl(config(site.base), out, log=lambda msg, **_: lines.append(msg))
    return summary, lines


def requests_for(site: NoticeSite, path: str) -> list[int]:
    return [status for p, status in site.log if p == path]


def test_crawl_end_to_end_then_incremental(site, tmp_path):
    summary, lines = run(site, tmp_path)

    # pagination: both list pages, not the third (max_pages: 2)
    assert summary.list_pages == 2 and not requests_for(site, "/tzgg/index3.htm")
    # robots.txt: the disallowed page is never requested
    assert summary.robots == 1 and not requests_for(site, "/private/p1.htm")
    # 500, then success on the retry
    assert requests_for(site, "/tzgg/flaky.htm") == [500, 200]
    # failures are reported, and the crawl went on past them
    failed = {url.rsplit("/", 1)[1]: why for url, why in summary.failed}
    assert set(failed) == {"slow.htm", "broken.htm", "big.htm"}
    assert "Timeout" in failed["slow.htm"] and "3 attempts" in failed["slow.htm"]
    assert "malformed page" in failed["broken.htm"]
    assert "byte cap" in failed["big.htm"]
    assert summary.new == 4 and summary.rejected == 0
    assert lines[-1].startswith(
        "crawl: 4 new, 0 updated, 0 unchanged, 1 skipped by robots.txt, 3 failed"
    )

    records = {r["url"].rsplit("/", 1)[1]: r for r in read_jsonl(tmp_path / "crawled.jsonl")}
    assert set(records) == {"a1.htm", "gbk.htm", "flaky.htm", "lm.htm"}
    gbk = records["gbk.htm"]  # decoded from GBK via <meta charset>
    assert gbk["title"] == "关于缴纳2026年度住宿费的通知"
    assert gbk["deadline"] == "2025年12月20日" and "学生公寓3号楼" in gbk["body"]
    a1 = records["a1.htm"]
    assert a1["publish_date"] == "2025-12-01" and a1["department"] == "教务处"
    assert a1["category"] == "教务" and a1["source"] == "crawl:test-jwc"
    assert a1["deadline"] == "2025年12月15日" and a1["location"] == "综合服务大厅105室"
    assert a1["url"] == f"{site.base}/tzgg/a1.htm" and a1["fetched_at"].endswith("+00:00")
    assert (
        "打印" not in a1["body"] and "关闭窗口" not in a1["body"] and "当前位置" not in a1["body"]
    )
    assert records["flaky.htm"]["publish_date"] == "2025-11-20"
    assert records["lm.htm"]["location"] == "图书馆三楼学术报告厅"

    # per-host rate limit: no two requests closer than delay_s
    times = site.arrivals
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.08

    # second crawl: nothing unchanged is downloaded or written again
    before = (tmp_path / "crawled.jsonl").read_bytes()
    state_before = (tmp_path / ".crawl" / "state.json").read_bytes()
    site.log.clear()
    again, _ = run(site, tmp_path)
    assert (again.new, again.updated, again.unchanged) == (0, 0, 4)
    for page in ("a1", "flaky", "lm"):
        assert requests_for(site, f"/tzgg/{page}.htm") == [304]
    assert (tmp_path / "crawled.jsonl").read_bytes() == before
    assert (tmp_path / ".crawl" / "state.json").read_bytes() == state_before
    state = read_json(tmp_path / ".crawl" / "state.json")["pages"]
    assert state[f"{site.base}/tzgg/a1.htm"]["etag"]

    # a changed page is fetched again and replaced in place, not duplicated
    site.bodies["a1"] = site.bodies["a1"].replace("12月15日", "12月18日")
    third, _ = run(site, tmp_path)
    assert (third.new, third.updated) == (0, 1)
    rows = read_jsonl(tmp_path / "crawled.jsonl")
    assert len(rows) == 4 and rows[0]["deadline"] == "2025年12月18日"

    # a changed site config reads every page afresh: no validators, no 304s
    site.log.clear()
    moved = config(site.base).sites[0].model_copy(update={"category": "科研"})
    fourth = crawl(SitesFile(sites=[moved], settings=SETTINGS), tmp_path, log=lambda *a, **k: None)
    assert fourth.updated == 4 and requests_for(site, "/tzgg/a1.htm") == [200]
    assert {r["category"] for r in read_jsonl(tmp_path / "crawled.jsonl")} == {"科研"}


def test_an_unreachable_robots_txt_means_disallow_all(tmp_path):
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    fast = Settings(user_agent=UA, delay_s=0, timeout_s=0.3, retries=0)
    cfg = SitesFile(sites=config(dead).sites, settings=fast)
    summary = crawl(cfg, tmp_path, log=lambda *a, **k: None)
    assert summary.robots == 1 and summary.new == 0


def test_llmops_crawl_reads_a_sites_file(site, tmp_path):
    from pipeline.cli import main

    sites = tmp_path / "sites.yaml"
    sites.write_text(
        "settings: {delay_s: 0.0, timeout_s: 0.5, retries: 0}\n"
        "sites:\n"
        "  - name: test-jwc\n"
        "    category: 教务\n"
        "    department: 教务处\n"
        f"    start_urls: [{site.base}/tzgg/index.htm]\n"
        "    max_pages: 1\n"
        "    selectors: {links: 'ul.news li a', title: 'div.article h1', date: '.date',"
        " body: 'div.article div.content'}\n",
        encoding="utf-8",
    )
    assert main(["crawl", "--sites", str(sites), "--out", str(tmp_path / "raw")]) == 0
    titles = {r["title"] for r in read_jsonl(tmp_path / "raw" / "crawled.jsonl")}
    assert "关于缴纳2026年度住宿费的通知" in titles


def test_crawl_stage_is_off_until_unfrozen_then_crawls_incrementally(site, tmp_path):
    """In a scratch copy: `dvc repro` leaves the network alone and `dvc status` quiet; with
    `frozen: true` replaced by `always_changed: true` (as docs/crawling.md says) it crawls, and a
    second repro with an unchanged site does not rerun prepare."""
    from pipeline.scratch import copy_repo

    from ..conftest import ROOT, run

    repo = copy_repo(ROOT, tmp_path / "repo", from_nothing=True)
    (repo / "configs" / "sites" / "local.yaml").write_text(
        "settings: {delay_s: 0.0, timeout_s: 0.5, retries: 1, backoff_s: 0.05}\n"
        "sites:\n"
        "  - {name: local, category: 教务, department: 教务处, max_pages: 2,\n"
        f"     start_urls: ['{site.base}/tzgg/index.htm'],\n"
        "     selectors: {links: 'ul.news li a', next: 'a.next', title: 'div.article h1',\n"
        "                 date: '.date', body: 'div.article div.content'}}\n",
        encoding="utf-8",
    )
    params = repo / "params.yaml"
    params.write_text(
        params.read_text().replace("configs/sites/example.yaml", "configs/sites/local.yaml")
    )
    frozen = run(["dvc", "repro", "prepare"], cwd=repo)
    assert "Running stage 'crawl'" not in frozen.stdout and not site.log
    assert "crawl" not in json.loads(run(["dvc", "status", "--json"], cwd=repo).stdout)
    dvc_yaml = repo / "dvc.yaml"
    on = dvc_yaml.read_text().replace("    frozen: true\n", "    always_changed: true\n", 1)
    dvc_yaml.write_text(on)
    first = run(["dvc", "repro", "prepare"], cwd=repo).stdout
    assert "crawl: 4 new" in first and "prepare: 364 notices" in first
    second = run(["dvc", "repro", "prepare"], cwd=repo).stdout
    assert "crawl: 0 new, 0 updated, 4 unchanged" in second
    assert "Stage 'prepare' didn't change, skipping" in second


class Boundaries:
    """A site that tries to lead the crawler astray: links and a redirect to another host
    (`localhost` is the same server under another name), a link carrying credentials, a body
    that drips a byte at a time, and (when asked) a robots.txt demanding a day between
    requests."""

    def __init__(self):
        self.requests: list[tuple[str, str]] = []  # (Host header, path)
        self.crawl_delay: int | None = None

    def handler(site) -> type[BaseHTTPRequestHandler]:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def send(self, status: int, body: bytes = b"", headers: dict | None = None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

            def do_GET(self):
                site.requests.append((self.headers.get("Host", ""), self.path))
                port = self.server.server_address[1]
                html = {"Content-Type": "text/html; charset=utf-8"}
                if self.path == "/robots.txt":
                    delay = f"Crawl-delay: {site.crawl_delay}\n" if site.crawl_delay else ""
                    return self.send(200, f"User-agent: *\n{delay}".encode())
                if self.path == "/tzgg/index.htm":
                    links = [
                        "ok.htm",
                        f"http://localhost:{port}/offsite/linked.htm",
                        "away.htm",
                        f"http://admin:s3cret@127.0.0.1:{port}/tzgg/private.htm",
                        "drip.htm",
                    ]
                    return self.send(200, listing(links, None).encode(), html)
                if self.path == "/tzgg/ok.htm":
                    body = "因设备检修，图书馆将于2025年12月6日闭馆一天，地点：图书馆总馆。"
                    page = detail("关于图书馆闭馆的通知", "2025-12-01", "图书馆", [body])
                    return self.send(200, page.encode(), html)
                if self.path == "/tzgg/away.htm":
                    target = f"http://localhost:{port}/offsite/redirected.htm"
                    return self.send(302, headers={"Location": target})
                if self.path == "/tzgg/drip.htm":
                    self.send_response(200)
                    self.send_header("Content-Length", "100000")
                    self.end_headers()
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        for _ in range(200):  # a byte every 50 ms: 10 s in all
                            self.wfile.write(b"x")
                            self.wfile.flush()
                            time.sleep(0.05)
                    return None
                return self.send(404, b"not found")

        return Handler


@pytest.fixture
def boundaries():
    with serving(Boundaries()) as s:
        yield s


def boundaries_config(base: str, **settings) -> SitesFile:
    fast = Settings(user_agent=UA, delay_s=0.0, timeout_s=0.5, retries=0, **settings)
    site = Site(
        name="edge",
        category="后勤",
        start_urls=[f"{base}/tzgg/index.htm"],
        selectors=SELECTORS,
        max_pages=1,
        department="图书馆",
    )
    return SitesFile(sites=[site], settings=fast)


def test_the_crawler_stays_on_its_site_never_sends_credentials_and_keeps_its_deadline(
    boundaries, tmp_path
):
    lines: list[str] = []
    t0 = time.monotonic()
    summary = crawl(
        boundaries_config(boundaries.base), tmp_path, log=lambda m, **_: lines.append(m)
    )
    took = time.monotonic() - t0
    paths = [path for _, path in boundaries.requests]
    # nothing on another host is ever requested, linked or redirected to
    assert not any(p.startswith("/offsite/") for p in paths), boundaries.requests
    assert {host for host, _ in boundaries.requests} == {boundaries.base.removeprefix("http://")}
    # the URL with credentials is never requested, and its password is written nowhere
    assert "/tzgg/private.htm" not in paths
    written = (tmp_path / "crawled.jsonl").read_text() + (
        tmp_path / ".crawl/state.json"
    ).read_text()
    assert "s3cret" not in written and "s3cret" not in "\n".join(lines)
    assert summary.off_site == 2  # the linked other host and the credentials
    failed = {url.rsplit("/", 1)[1]: why for url, why in summary.failed}
    assert "redirect to" in failed["away.htm"] and "another host (localhost:" in failed["away.htm"]
    # a body trickling in never outlives timeout_s (0.5 s), though each byte beats it
    assert "not complete within 0.5 s" in failed["drip.htm"]
    assert took < 5, took
    assert summary.new == 1 and "0 failed" not in lines[-1]
    assert "2 off-site links not followed" in lines[-1]


def test_a_crawl_delay_beyond_the_cap_skips_the_host_instead_of_waiting_a_day(boundaries, tmp_path):
    boundaries.crawl_delay = 100_000
    lines: list[str] = []
    cfg = boundaries_config(boundaries.base, max_crawl_delay_s=30.0)
    summary = crawl(cfg, tmp_path, log=lambda m, **_: lines.append(m))
    assert summary.robots == 1 and summary.new == 0
    assert [p for _, p in boundaries.requests] == ["/robots.txt"]
    wanted = "Crawl-delay of 100000 s, more than settings.max_crawl_delay_s (30)"
    assert any(wanted in m for m in lines)


def test_a_crawl_stopped_by_sigterm_keeps_what_it_fetched(site, tmp_path):
    """`llmops crawl` killed by SIGTERM while waiting on a slow page: the notices fetched
    before it are in crawled.jsonl and the state, as after a normal stop."""
    import signal
    import subprocess

    from ..conftest import BIN

    sites = tmp_path / "sites.yaml"
    sites.write_text(
        "settings: {delay_s: 0.0, timeout_s: 30.0, retries: 0}\n"
        "sites:\n"
        "  - {name: test-jwc, category: 教务, department: 教务处, max_pages: 2,\n"
        f"     start_urls: ['{site.base}/tzgg/index.htm'],\n"
        "     selectors: {links: 'ul.news li a', next: 'a.next', title: 'div.article h1',\n"
        "                 date: '.date', body: 'div.article div.content'}}\n",
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [str(BIN / "llmops"), "crawl", "--sites", str(sites), "--out", str(tmp_path / "raw")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while ("/tzgg/lm.htm", 200) not in site.log:  # the page before the slow one
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.3)  # now waiting on slow.htm, which answers after 2 s
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    titles = {r["title"] for r in read_jsonl(tmp_path / "raw" / "crawled.jsonl")}
    assert "关于2026年春季学期选课的通知" in titles and len(titles) >= 3, (titles, err)
    state = read_json(tmp_path / "raw" / ".crawl" / "state.json")["pages"]
    assert len(state) == len(titles)
