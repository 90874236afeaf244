"""The PII scrubber: every kind it promises is removed, and ordinary notice text is not."""

import pytest

from pipeline.data.pii import find, scrub


@pytest.mark.parametrize(
    "text, kind",
    [
        ("请联系13812345678咨询", "PHONE"),
        ("电话：+86 138-1234-5678", "PHONE"),
        ("手机 008615912345678。", "PHONE"),
        ("办公室电话010-62751234，", "PHONE"),
        ("(021)64781234转", "PHONE"),
        ("call +1 415 555 0100 today", "PHONE"),
        ("发送至 zhang.san@pku.edu.cn 或", "EMAIL"),
        ("身份证号110105199001011234，", "ID"),
        ("身份证：44030420011231002X", "ID"),
        ("学号：2021012345的同学", "STUDENT_ID"),
        ("学号 A1234567", "STUDENT_ID"),
        ("student ID: 12345678", "STUDENT_ID"),
        ("2020301234同学请到教务处", "STUDENT_ID"),
    ],
)
def test_each_kind_is_replaced_by_its_placeholder(text, kind):
    out = scrub(text)
    assert f"[{kind}]" in out, out
    assert not any(ch.isdigit() for ch in out.replace("[", "").split(f"[{kind}]")[0][-3:])
    assert find(text)[kind] == 1


def test_the_rest_of_the_text_is_kept_and_nothing_leaks():
    text = "请学号2021012345、电话13812345678的同学于2025年12月7日前到302室，邮件a@b.cn"
    out = scrub(text)
    assert out == "请学号[STUDENT_ID]、电话[PHONE]的同学于2025年12月7日前到302室，邮件[EMAIL]"
    for secret in ("2021012345", "13812345678", "a@b.cn"):
        assert secret not in out


@pytest.mark.parametrize(
    "text",
    [
        "请于2025年12月7日前交至科技楼302室",
        "报名截止20261122，名额120人",  # a compact date is no student number
        "经费12345元，编号A-17",
        "第3教学楼A208，下午2:30",
        "138人参加",
    ],
)
def test_ordinary_notice_text_is_untouched(text):
    assert scrub(text) == text and not find(text)


def test_an_id_card_is_not_mistaken_for_a_phone_and_a_longer_number_for_either():
    assert scrub("110105199001011234") == "[ID]"
    assert scrub("1381234567890123") == "1381234567890123"  # 16 digits: an account, not a phone
