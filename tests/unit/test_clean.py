from pipeline.data.clean import html_to_text, normalize, strip_boilerplate
from pipeline.data.synthetic import generate


def test_full_width_letters_digits_and_spaces_become_ascii_but_chinese_punctuation_stays():
    assert normalize("２０２５年１２月７日前，发送至ＡＢＣ＠ｅｄｕ．ｃｎ：谢谢！") == (
        "2025年12月7日前，发送至ABC@edu.cn：谢谢！"
    )
    assert normalize("（周六）\u3000９：３０") == "（周六） 9：30"


def test_whitespace_and_invisible_characters():
    assert normalize("  第一行\u200b  内容\t\t\n\n\n  第二行 \r\n") == "第一行 内容\n第二行"


def test_the_shipped_notices_are_already_normal():
    for n in generate(120):
        assert normalize(n["body"]) == n["body"] and normalize(n["title"]) == n["title"]


def test_html_blocks_become_lines_and_inline_tags_do_not_split_sentences():
    html = (
        "<div><p>请于<b>2025年12月7日</b>前<a href='#'>报名</a>。</p><script>var x=1;</script>"
        "<p>地点：大礼堂<br>时间：上午</p><style>p{}</style></div>"
    )
    assert html_to_text(html) == "请于2025年12月7日前报名。\n地点：大礼堂\n时间：上午"


def test_boilerplate_lines_are_dropped_and_content_kept():
    text = (
        "当前位置：首页 > 通知\n请各单位按时报送。\n【打印】\n关闭窗口\n上一篇：关于\n浏览次数：12"
    )
    assert strip_boilerplate(text) == "请各单位按时报送。"
