from collections import Counter

import pytest

from pipeline.data.pii import id_check_digit_ok, scrub

# a valid check digit (GB 11643), computed by hand: 11010519491231002X
VALID_ID = "11010519491231002X"


def test_each_kind_is_replaced_by_its_placeholder_and_counted():
    text = (
        f"联系人：王老师，电话 13812345678 或 010-62751234，邮箱 wang.li@pku.edu.cn；"
        f"身份证号 {VALID_ID}，学号 2021012345。"
    )
    out, counts = scrub(text)
    assert out == (
        "联系人：王老师，电话 <PHONE> 或 <PHONE>，邮箱 <EMAIL>；"
        "身份证号 <ID_CARD>，学号 <STUDENT_NUMBER>。"
    )
    assert counts == Counter(phone=2, email=1, id_card=1, student_number=1)


@pytest.mark.parametrize(
    "phone",
    [
        "13812345678",
        "+86 138 1234 5678",
        "138-1234-5678",
        "(010)62751234",
        "（0571）88888888",
        "0571-8888 8888",
        "021-64040000转8012",
    ],
)
def test_phone_forms(phone):
    out, counts = scrub(f"咨询电话：{phone}。")
    assert out == "咨询电话：<PHONE>。" and counts["phone"] == 1


def test_an_18_digit_number_with_a_wrong_check_digit_is_not_an_id_card():
    assert id_check_digit_ok(VALID_ID)
    wrong = VALID_ID[:-1] + "5"
    assert not id_check_digit_ok(wrong)
    assert scrub(f"编号 {wrong}")[1]["id_card"] == 0


@pytest.mark.parametrize(
    "text",
    [
        "请于2025年12月7日前报送行政楼330室。",
        "12月20日（周六）9:30在图书馆一楼报告厅",
        "关于开展2026年度科研成果奖励申报的通知",
        "科技楼302室",
        "第二教学楼B3105",
    ],
)
def test_notice_facts_are_not_mistaken_for_pii(text):
    assert scrub(text) == (text, Counter())


def test_student_number_pattern_is_configurable():
    text = "学号 S20231234 与 2021012345"
    assert scrub(text, student_number=r"S\d{8}")[0] == "学号 <STUDENT_NUMBER> 与 2021012345"
    assert scrub(text, student_number=None)[1]["student_number"] == 0
