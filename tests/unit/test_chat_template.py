"""Unit tests for generator/chat_template.py: Magpie's pre-query text and stop for common template styles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generator.chat_template import (
    ChatTemplateError,
    PreQuery,
    load_chat_template,
    pre_query,
    system_text,
)
from generator.teachers.embedded import embedded_model_dir

# SmolLM2-135M-Instruct's template, verbatim: ChatML with a default system prompt.
SMOLLM2 = """{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system
You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>
' }}{% endif %}{{'<|im_start|>' + message['role'] + '
' + message['content'] + '<|im_end|>' + '
'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant
' }}{% endif %}"""
SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
CHATML_PREFIX = f"<|im_start|>system\n{SMOLLM2_SYSTEM}<|im_end|>\n<|im_start|>user\n"

# Meta-Llama-3-8B-Instruct's template (BOS from the bos_token variable, as in the original).
LLAMA3 = (
    r"{% set loop_messages = messages %}{% for message in loop_messages %}"
    r"{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    r"+ message['content'] | trim + '<|eot_id|>' %}"
    r"{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    r"{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

# Mistral-7B-Instruct-v0.1's template: no system role, user turns wrapped in [INST] ... [/INST].
MISTRAL = (
    r"{{ bos_token }}{% for message in messages %}"
    r"{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    r"{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    r"{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    r"{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    r"{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)

# Gemma's template: refuses a system role.
GEMMA = (
    r"{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    r"{{ raise_exception('System role not supported') }}{% endif %}"
    r"{% for message in messages %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
    r"{% else %}{% set role = message['role'] %}{% endif %}"
    r"{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    r"{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)

# Vicuna-style: nothing closes a user turn but the assistant's header.
VICUNA = (
    r"{% for message in messages %}{% if message['role'] == 'user' %}{{ 'USER: ' + message['content'] + '\n' }}"
    r"{% elif message['role'] == 'assistant' %}{{ 'ASSISTANT: ' + message['content'] + '\n' }}{% endif %}"
    r"{% endfor %}"
)

# Llama-2-style with a default system prompt folded into the first [INST].
LLAMA2_DEFAULT = (
    r"{% if messages[0]['role'] == 'system' %}{% set sys = messages[0]['content'] %}"
    r"{% set loop_messages = messages[1:] %}{% else %}{% set sys = 'Be safe.' %}"
    r"{% set loop_messages = messages %}{% endif %}"
    r"{% for message in loop_messages %}{% if message['role'] == 'user' %}"
    r"{% if loop.first %}{{ '[INST] <<SYS>>\n' + sys + '\n<</SYS>>\n\n' + message['content'] + ' [/INST]' }}"
    r"{% else %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}"
    r"{% else %}{{ ' ' + message['content'] + ' </s>' }}{% endif %}{% endfor %}"
)


# -- pre_query --------------------------------------------------------------------------------------


def test_chatml_with_default_system_prompt() -> None:
    assert pre_query(SMOLLM2) == PreQuery(prefix=CHATML_PREFIX, stop=("<|im_end|>",), system=None)
    assert system_text(SMOLLM2) == SMOLLM2_SYSTEM


def test_chatml_with_given_system_prompt() -> None:
    pq = pre_query(SMOLLM2, system="Be brief.")
    assert pq.prefix == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n"
    assert pq.stop == ("<|im_end|>",)
    assert pq.system == "Be brief."


def test_llama3() -> None:
    pq = pre_query(LLAMA3, bos_token="<|begin_of_text|>")
    assert pq.prefix == "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
    assert pq.stop == ("<|eot_id|>",)
    # Without a BOS (the server adds its own), the prefix starts at the header.
    assert pre_query(LLAMA3).prefix == "<|start_header_id|>user<|end_header_id|>\n\n"
    assert system_text(LLAMA3) is None


def test_llama3_with_system_prompt() -> None:
    pq = pre_query(LLAMA3, system="Be brief.")
    assert pq.prefix == (
        "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n"
    )
    assert pq.stop == ("<|eot_id|>",)


def test_mistral() -> None:
    pq = pre_query(MISTRAL, bos_token="<s>")
    assert pq.prefix == "<s>[INST] "
    assert pq.prefix.endswith("[INST] ")
    assert pq.stop == ("[/INST]",)
    assert system_text(MISTRAL) is None


def test_gemma_refuses_a_system_prompt() -> None:
    pq = pre_query(GEMMA)
    assert pq.prefix == "<start_of_turn>user\n"
    assert pq.stop == ("<end_of_turn>",)
    with pytest.raises(ChatTemplateError, match="refused the conversation: System role not supported"):
        pre_query(GEMMA, system="x")
    assert system_text(GEMMA) is None


def test_turn_closed_only_by_the_assistant_header() -> None:
    pq = pre_query(VICUNA)
    assert pq.prefix == "USER: "
    assert pq.stop == ("ASSISTANT:",)


def test_default_system_prompt_inside_the_first_user_turn() -> None:
    assert pre_query(LLAMA2_DEFAULT).prefix == "[INST] <<SYS>>\nBe safe.\n<</SYS>>\n\n"
    assert pre_query(LLAMA2_DEFAULT).stop == ("[/INST]",)
    assert system_text(LLAMA2_DEFAULT) == "Be safe."


def test_no_end_of_turn_at_all() -> None:
    template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with pytest.raises(ChatTemplateError, match="cannot find where the user's turn ends"):
        pre_query(template)


def test_template_that_drops_the_user_message() -> None:
    with pytest.raises(ChatTemplateError, match="dropped the user's message"):
        pre_query("{{ 'hello' }}")


def test_broken_templates() -> None:
    with pytest.raises(ChatTemplateError, match="not valid Jinja"):
        pre_query("{% for m in messages %}")
    with pytest.raises(ChatTemplateError, match="failed to render"):
        pre_query("{{ messages[0]['content'] + 1 }}")


# -- load_chat_template -----------------------------------------------------------------------------


def test_load_from_folder_with_jinja_file(tmp_path: Path) -> None:
    (tmp_path / "chat_template.jinja").write_text(SMOLLM2)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ 'other' }}"}))
    assert load_chat_template(str(tmp_path)) == SMOLLM2
    assert load_chat_template(str(tmp_path / "chat_template.jinja")) == SMOLLM2


def test_load_from_chat_template_json(tmp_path: Path) -> None:
    (tmp_path / "chat_template.json").write_text(json.dumps({"chat_template": GEMMA}))
    assert load_chat_template(str(tmp_path)) == GEMMA


def test_load_from_tokenizer_config_string(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": LLAMA3, "bos_token": "x"}))
    assert load_chat_template(str(tmp_path)) == LLAMA3
    assert load_chat_template(str(tmp_path / "tokenizer_config.json")) == LLAMA3


def test_load_from_tokenizer_config_list(tmp_path: Path) -> None:
    named = [{"name": "tool_use", "template": "{{ 'tools' }}"}, {"name": "default", "template": MISTRAL}]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": named}))
    assert load_chat_template(str(tmp_path)) == MISTRAL
    unnamed = [{"name": "rag", "template": GEMMA}, {"name": "tool_use", "template": "{{ 'tools' }}"}]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": unnamed}))
    assert load_chat_template(str(tmp_path)) == GEMMA


def test_load_literal_template() -> None:
    assert load_chat_template(SMOLLM2) == SMOLLM2


def test_load_missing_path() -> None:
    with pytest.raises(ChatTemplateError, match="/no/such/model"):
        load_chat_template("/no/such/model")


def test_load_folder_without_template(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>"}))
    with pytest.raises(ChatTemplateError, match=r"no chat template: looked for chat_template\.jinja"):
        load_chat_template(str(tmp_path))


def test_load_bad_json(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text("{not json")
    with pytest.raises(ChatTemplateError, match="not valid JSON"):
        load_chat_template(str(tmp_path))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": [1, 2]}))
    with pytest.raises(ChatTemplateError, match="neither a string nor a list"):
        load_chat_template(str(tmp_path))


def test_embedded_model_folder() -> None:
    folder = embedded_model_dir()
    if not folder.is_dir():
        pytest.skip(f"the embedded model is not converted yet ({folder} is missing)")
    pq = pre_query(load_chat_template(str(folder)))
    assert pq.prefix == CHATML_PREFIX
    assert pq.stop == ("<|im_end|>",)
