"""Behaviour of the built-in tiny model's pieces, on a model small enough to build in seconds."""

from pipeline.data.records import task_records
from pipeline.data.synthetic import generate
from pipeline.modeling import generate as generate_text
from pipeline.modeling import load_model, load_tokenizer

from ..conftest import LABELS


def test_each_label_is_a_single_token(tiny_tok):
    for label in LABELS:
        assert len(tiny_tok(label, add_special_tokens=False)["input_ids"]) == 1, label


def test_chat_template_prompt_is_a_prefix_of_the_full_conversation(tiny_tok):
    record = task_records(generate(1)[0], ["classify"])[0]
    prompt = tiny_tok.apply_chat_template(
        record["prompt"], tokenize=False, add_generation_prompt=True
    )
    full = tiny_tok.apply_chat_template(record["prompt"] + record["completion"], tokenize=False)
    assert full.startswith(prompt)
    assert full[len(prompt) :] == f"{record['completion'][0]['content']}<|im_end|>\n"


def test_tokenizer_round_trips_chinese(tiny_tok):
    text = "请于2026年3月15日前到图书馆三楼报告厅报名。"
    assert tiny_tok.decode(tiny_tok(text, add_special_tokens=False)["input_ids"]) == text


def test_saved_model_and_tokenizer_reload(tiny_base, tiny_tok):
    again = load_tokenizer(tiny_base)
    assert again.chat_template == tiny_tok.chat_template
    assert again.eos_token == "<|im_end|>" and again.pad_token == "<|pad|>"
    model = load_model(tiny_base)
    assert model.config.tie_word_embeddings is False


def test_batched_left_padded_generation_equals_one_at_a_time(tiny_base):
    tok, model = load_tokenizer(tiny_base), load_model(tiny_base)
    prompts = [r["prompt"] for n in generate(6) for r in task_records(n, ["classify", "title"])]
    batched = generate_text(model, tok, prompts, batch_size=8, max_new_tokens=6)
    single = generate_text(model, tok, prompts, batch_size=1, max_new_tokens=6)
    assert batched.texts == single.texts
    assert len(batched.batch_seconds) == 2 and len(single.batch_seconds) == len(prompts)
