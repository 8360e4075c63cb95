"""Chat templates for Magpie: the pre-query text that makes an aligned model write a user query.

Magpie (Xu et al. 2024) sends an aligned chat model only its template's *pre-query template*, the
text up to where a user's message would start (for ChatML, `<|im_start|>user\\n`), as a plain
completion prompt. Having been trained on that layout, the model continues with a plausible user query
and closes the turn with the template's end-of-turn marker, which is therefore the stop sequence.

Rather than parse each template, we render it (as transformers does: a sandboxed Jinja2 environment)
with a sentinel string as the user's message: what precedes the sentinel is the pre-query template,
and what follows it starts with the end-of-turn marker.

A template may add its own default system prompt when the conversation has none (SmolLM2 and Qwen2.5
do): the prefix then contains it. `system_text` returns that default so that queries which merely
repeat it can be filtered out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from jinja2 import Template
    from jinja2.sandbox import ImmutableSandboxedEnvironment

# Where a model folder keeps its chat template, in the order transformers prefers them.
MODEL_FOLDER_FILES = ("chat_template.jinja", "chat_template.json", "tokenizer_config.json")

# No whitespace at either end, so templates that `| trim` the content leave them intact; nothing a
# template would escape or a real conversation would contain.
USER_SENTINEL = "MAGPIE7USER7SENTINEL"
ASSISTANT_SENTINEL = "MAGPIE7ASSISTANT7SENTINEL"
SYSTEM_SENTINEL = "MAGPIE7SYSTEM7SENTINEL"


class ChatTemplateError(ValueError):
    """A chat template cannot be found, loaded, rendered, or yields no pre-query text."""


@dataclass(frozen=True)
class PreQuery:
    """What a Magpie request needs: the completion prompt and the text that ends the user's turn.

    `system` is the system prompt the caller asked for (None: none asked). The template may have put a
    default system prompt into `prefix` anyway; `system_text` tells which.
    """

    prefix: str
    stop: tuple[str, ...]
    system: str | None


# -- loading ----------------------------------------------------------------------------------------


def load_chat_template(source: str) -> str:
    """The Jinja chat template named by `source`.

    `source` is a template file (`.jinja`, or a `.json` such as tokenizer_config.json or
    chat_template.json with a `chat_template` key), a model folder (MODEL_FOLDER_FILES, in order), or
    the template text itself (anything containing `{%` or `{{`).
    """
    # Literal text first: a template is longer than a file name may be, and stat would fail on it.
    if "{%" in source or "{{" in source:
        return source
    path = Path(source).expanduser()
    if path.is_dir():
        return _from_folder(path)
    if path.is_file():
        template = _from_file(path)
        if template is None:
            raise ChatTemplateError(f"{path} has no `chat_template` key")
        return template
    raise ChatTemplateError(
        f"chat template source {source!r} is not a file, a model folder or a Jinja template "
        f"(a folder would need one of {', '.join(MODEL_FOLDER_FILES)})"
    )


def _from_folder(folder: Path) -> str:
    for name in MODEL_FOLDER_FILES:
        path = folder / name
        template = _from_file(path) if path.is_file() else None
        if template is not None:
            return template
    raise ChatTemplateError(
        f"model folder {folder} has no chat template: looked for {MODEL_FOLDER_FILES[0]}, and a "
        f"`chat_template` key in {' and '.join(MODEL_FOLDER_FILES[1:])}"
    )


def _from_file(path: Path) -> str | None:
    """The template in one file; None for a JSON file without a `chat_template` key."""
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".json":
        return text
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise ChatTemplateError(f"{path} is not valid JSON: {e}") from e
    value = config.get("chat_template") if isinstance(config, dict) else None
    return None if value is None else _pick_template(value, path)


def _pick_template(value: Any, path: Path) -> str:
    """A `chat_template` value: one template, or a list of named ones (tool-use variants beside the
    default), of which we want "default", else the first."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(t, dict) for t in value):
        chosen = next((t for t in value if t.get("name") == "default"), value[0])
        if isinstance(chosen.get("template"), str):
            return str(chosen["template"])
    raise ChatTemplateError(
        f"{path}: `chat_template` is neither a string nor a list of {{'name', 'template'}} entries"
    )


# -- rendering --------------------------------------------------------------------------------------


def _raise_exception(message: str) -> NoReturn:
    # Templates call this to refuse a conversation (Gemma: a system role); say it was the template.
    raise ChatTemplateError(f"the chat template refused the conversation: {message}")


def _tojson(
    x: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: Any = None,
    sort_keys: bool = False,
) -> str:
    # transformers' filter: Jinja's own escapes <, >, & and ' for HTML, which chat templates don't want.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    # Llama 3.1 and later templates put today's date into their default system prompt.
    return datetime.now().strftime(fmt)


@lru_cache(maxsize=1)
def _environment() -> ImmutableSandboxedEnvironment:
    # Imported here so this module loads without jinja2 (it comes with transformers, not our core deps).
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


@lru_cache(maxsize=16)
def _compile(template: str) -> Template:
    from jinja2 import TemplateSyntaxError

    try:
        return _environment().from_string(template)
    except TemplateSyntaxError as e:
        raise ChatTemplateError(f"the chat template is not valid Jinja (line {e.lineno}): {e.message}") from e


def render(
    template: str,
    messages: list[dict[str, str]],
    *,
    add_generation_prompt: bool = False,
    bos_token: str = "",
    eos_token: str = "",
) -> str:
    """`messages` through the chat template, as transformers' `apply_chat_template(tokenize=False)`."""
    compiled = _compile(template)
    try:
        return compiled.render(
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=bos_token,
            eos_token=eos_token,
        )
    except ChatTemplateError:
        raise
    except Exception as e:  # a template is a program: any failure of it is the template's
        raise ChatTemplateError(f"the chat template failed to render: {type(e).__name__}: {e}") from e


# -- the pre-query template -------------------------------------------------------------------------


def _leading(system: str | None) -> list[dict[str, str]]:
    return [] if system is None else [{"role": "system", "content": system}]


def pre_query(
    template: str, system: str | None = None, *, bos_token: str = "", eos_token: str = ""
) -> PreQuery:
    """The pre-query template (with `system` as the system prompt, if given) and the user turn's end.

    Leave `bos_token` empty when the server tokenizes the prompt with its BOS token added (vLLM's
    completions endpoint does for Llama models): the prefix would otherwise start with two.
    """
    messages = [*_leading(system), {"role": "user", "content": USER_SENTINEL}]
    text = render(template, messages, bos_token=bos_token, eos_token=eos_token)
    prefix, found, suffix = text.partition(USER_SENTINEL)
    if not found:
        raise ChatTemplateError("the chat template dropped the user's message: no pre-query text to find")
    stop = _first_line(suffix) or _end_before_assistant(template, messages, bos_token, eos_token)
    if not stop:
        raise ChatTemplateError(
            "cannot find where the user's turn ends in the chat template: nothing follows the user's "
            "message, not even before an assistant's turn"
        )
    return PreQuery(prefix=prefix, stop=(stop,), system=system)


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip()


def _end_before_assistant(
    template: str, messages: list[dict[str, str]], bos_token: str, eos_token: str
) -> str:
    """What separates the user's message from an assistant's reply, for templates that close a user
    turn only by opening the next one (`USER: ... ASSISTANT: ...`)."""
    reply = {"role": "assistant", "content": ASSISTANT_SENTINEL}
    text = render(template, [*messages, reply], bos_token=bos_token, eos_token=eos_token)
    _, _, after_user = text.partition(USER_SENTINEL)
    between, found, _ = after_user.partition(ASSISTANT_SENTINEL)
    return between.strip() if found else ""


def system_text(template: str) -> str | None:
    """The system prompt the template inserts when the conversation has none; None if it adds none.

    The same template rendered with a sentinel system prompt shows what surrounds a system prompt (the
    text before the sentinel, and after it up to the user's message); the default is what sits between
    those two delimiters when no system prompt is given.
    """
    user = {"role": "user", "content": USER_SENTINEL}
    bare, _, _ = render(template, [user]).partition(USER_SENTINEL)
    try:
        with_system = render(template, [{"role": "system", "content": SYSTEM_SENTINEL}, user])
    except ChatTemplateError:
        return None  # a template that refuses system prompts has no system turn to fill by default
    opening, found, rest = with_system.partition(SYSTEM_SENTINEL)
    closing, found_user, _ = rest.partition(USER_SENTINEL)
    fits = len(opening) + len(closing) <= len(bare) and bare.startswith(opening) and bare.endswith(closing)
    if not (found and found_user and fits):
        return None
    default = bare[len(opening) : len(bare) - len(closing)].strip()
    return default or None
