"""The crawler's pure parts: decoding, fact finding, dates and the sites file."""

import pytest

from pipeline.data.crawl import decode, find_deadline, find_location, iso_date, load_sites
from pipeline.io import DataError

from ..conftest import ROOT

TEXT = "关于缴纳2026年度住宿费的通知：请各位同学于2025年12月20日前通过校园缴费平台缴纳住宿费。" * 4


def test_decode_prefers_the_header_then_meta_then_detection():
    page = f"<html><head><meta charset='gbk'></head><body>{TEXT}</body></html>"
    assert TEXT in decode(page.encode("gbk"), "text/html")  # <meta charset>
    assert TEXT in decode(page.encode("gb18030"), "text/html; charset=GB2312")  # header
    utf8 = f"<html><body>{TEXT}</body></html>".encode()
    assert TEXT in decode(utf8, None)  # nothing declared: detected
    assert TEXT in decode(f"<html><body>{TEXT}</body></html>".encode("gb18030"), None)
    # a wrong declaration falls back to detection instead of failing
    assert TEXT in decode(utf8, "text/html; charset=ascii")


@pytest.mark.parametrize(
    ("body", "deadline"),
    [
        ("请于2025年12月7日前报送。", "2025年12月7日"),
        ("截止时间为2026年3月1日。", "2026年3月1日"),
        ("报名截止：2025年11月30日", "2025年11月30日"),
        ("会议于2025年12月7日举行", None),
    ],
)
def test_find_deadline(body, deadline):
    assert find_deadline(body) == deadline


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ("考场设在第二教学楼B305。", "第二教学楼B305"),
        ("地点：大礼堂", "大礼堂"),
        ("请交至科技楼302室，逾期不候。", "科技楼302室"),
        ("请按时完成。", None),
    ],
)
def test_find_location(body, location):
    assert find_location(body) == location


def test_iso_date():
    assert iso_date("发布时间：2025年11月2日 10:00") == "2025-11-02"
    assert iso_date("2025/1/5") == "2025-01-05"
    assert iso_date("昨天") == "昨天"  # the notice schema then rejects it, naming the field


def test_the_example_sites_file_loads():
    config = load_sites(ROOT / "configs" / "sites" / "example.yaml")
    assert [s.category for s in config.sites] == ["教务", "学生工作"]
    assert config.settings.delay_s >= 1.0


@pytest.mark.parametrize(
    ("yaml_text", "rule"),
    [
        (
            "sites: [{name: a, category: 教务, start_urls: [], selectors: {links: a, title: h1,"
            " body: div, colour: red}}]",
            "sites[0].selectors.colour: unknown key",
        ),
        (
            "sites: [{name: a, category: 体育, start_urls: [], selectors: {links: a, title: h1,"
            " body: div}}]",
            "sites[0].category: '体育' is not one of",
        ),
        (
            "sites: [{name: A B, category: 教务, start_urls: [], selectors: {links: a, title: h1,"
            " body: div}}]",
            "must be a unique slug",
        ),
        ("settings: {delay_s: fast}\nsites: []", "settings.delay_s: expected a number"),
    ],
)
def test_a_bad_sites_file_names_file_and_key(tmp_path, yaml_text, rule):
    path = tmp_path / "sites.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_sites(path)
    assert str(err.value).startswith(f"{path}: ") and rule in str(err.value)
