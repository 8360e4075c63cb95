"""The magpie profile's edge: which chat template a run's proposing teacher uses, and whether it can.

Magpie sends the pre-query text as a raw completion prompt, so the teacher that proposes needs a
completions endpoint and its model's chat template: an in-process vLLM model's comes from its folder
(the embedded model's included); a server's is given with `--chat-template`. Both are checked before
Ray or the teacher start, and each refusal says what to do instead.
"""

from __future__ import annotations

from generator.chat_template import ChatTemplateError, load_chat_template
from generator.config import ConfigError, RunConfig
from generator.profiles import PROFILES
from generator.teachers.routing import DEFAULT, teacher_for


def is_magpie(cfg: RunConfig) -> bool:
    return PROFILES[cfg.profile].proposal == "pre-query"


def magpie_template(cfg: RunConfig) -> str:
    """The chat template the proposing teacher's model speaks. Raises ConfigError saying why not."""
    name = teacher_for(cfg.route, "propose")
    teacher = cfg.for_teacher(name)
    chat_only = name != DEFAULT and cfg.teachers[name].api == "chat"
    if cfg.api == "chat" or chat_only:
        raise ConfigError(
            "the magpie profile needs a completions endpoint: it sends the chat template's text up to "
            "the user's turn as a raw prompt, which a chat-only API (--api chat) cannot take. Use a "
            "server with /v1/completions (vLLM, llama.cpp, TGI) or the in-process vLLM teacher"
        )
    source = cfg.chat_template
    if source is None and teacher.teacher == "vllm":
        from generator.teachers.embedded import resolve_model

        source = resolve_model(teacher.model)  # the model folder (the embedded one is converted once)
    if source is None:
        raise ConfigError(
            f"the magpie profile needs the chat template of {teacher.model}: give --chat-template "
            "(a .jinja file, a tokenizer_config.json, the model's folder, or the template itself)"
        )
    try:
        return load_chat_template(source)
    except ChatTemplateError as exc:
        raise ConfigError(f"--chat-template: {exc}") from None
