"""What a model was asked and what it answered, as a person reads it.

Instrumentations record conversations in several shapes:

* GenAI semantic conventions: ``gen_ai.input.messages`` /
  ``gen_ai.output.messages`` (JSON lists of ``{"role", "parts": [...]}``,
  parts ``text`` / ``tool_call`` / ``tool_call_response``) and
  ``gen_ai.system_instructions``; pydantic-ai adds ``pydantic_ai.all_messages``
  and ``final_result`` on its agent spans.
* OpenInference: flattened ``llm.input_messages.<i>.message.role|content``
  and ``llm.output_messages.<i>.message...`` (with
  ``...tool_calls.<j>.tool_call.function.name|arguments``), and the raw
  ``input.value`` / ``output.value``.
* OpenLLMetry: ``traceloop.entity.input|output`` and ``gen_ai.task.input|output``.

Values are untrusted text: these functions only pick and shorten them; they
are shown with markup disabled.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

SHORT = 2_000  # a summary line is a glance, not the whole conversation


F = TypeVar("F", bound=Callable[..., Any])


def _tolerant(fallback: Callable[..., Any]) -> Callable[[F], F]:
    """Trace values are untrusted and oddly shaped: a reader that trips over one gives up on it
    (``fallback(*args)``) instead of failing the span."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def safe(*args):
            try:
                return fn(*args)
            except (TypeError, AttributeError, KeyError, IndexError, ValueError, RecursionError):
                return fallback(*args)

        return safe  # type: ignore[return-value]

    return wrap


def loads(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return value
    return value


_SDK_CALL = re.compile(r"^ResponseFunctionToolCall\(arguments='(.*?)', call_id='[^']*', name='([^']*)'", re.S)


def _part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    if not isinstance(part, dict):
        return ""
    kind = part.get("type")
    if kind in (None, "text", "output_text", "input_text", "reasoning", "thinking"):
        text = part.get("content", part.get("text", ""))
        text = text if isinstance(text, str) else json.dumps(text)
        # The OpenTelemetry openai-agents instrumentation logs tool calls as the SDK object's repr.
        if text.startswith("ResponseFunctionToolCall(") and (m := _SDK_CALL.match(text)):
            return f"→ {m.group(2)}({m.group(1)})"
        return text
    if kind == "tool_call":
        args = part.get("arguments")
        args = args if isinstance(args, str) else json.dumps(args)
        return f"→ {part.get('name', 'tool')}({args})"
    if kind == "tool_call_response":
        result = part.get("result", part.get("response"))
        return f"← {part.get('name', 'tool')}: {result if isinstance(result, str) else json.dumps(result)}"
    return ""


def _message_text(message: Any) -> str:
    if isinstance(message, str):
        return message
    if isinstance(message, (list, tuple)) and len(message) == 2 and isinstance(message[1], str):
        return message[1]  # LangChain's ("user", "text") tuples
    if not isinstance(message, dict):
        return ""
    if "parts" in message:
        parts = message.get("parts")
        return " ".join(t for t in (_part_text(p) for p in parts) if t) if isinstance(parts, list) else ""
    if isinstance(message.get("kwargs"), dict):  # LangChain serialised message
        return _message_text(message["kwargs"])
    if isinstance(message.get("data"), dict):  # LangChain message dict
        return _message_text(message["data"])
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(t for t in (_part_text(p) for p in content) if t)
    text = content if isinstance(content, str) else ""
    calls = message.get("tool_calls") or []
    if isinstance(calls, list):
        for call in calls:
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                text += f" → {fn.get('name', 'tool')}({fn.get('arguments', '')})"
            elif isinstance(call, dict) and call.get("name"):
                text += f" → {call['name']}({json.dumps(call.get('args', {}))})"
    return text.strip()


@_tolerant(lambda *a: "")
def message_text(message: Any) -> str:
    """One message as a person reads it: its text, else the tool calls it asks for."""
    return _message_text(message)


def _role(message: Any) -> str | None:
    if isinstance(message, (list, tuple)) and len(message) == 2:
        return str(message[0])
    if not isinstance(message, dict):
        return None
    role = message.get("role") or message.get("type")
    if role is None and isinstance(message.get("kwargs"), dict):
        role = message["kwargs"].get("type")
    if role is None and isinstance(message.get("id"), list) and message["id"]:
        role = str(message["id"][-1]).replace("Message", "").lower()
    return {"human": "user", "ai": "assistant"}.get(str(role), str(role)) if role else None


def _messages(value: Any) -> list:
    """A list of messages out of the shapes frameworks log."""
    value = loads(value)
    if isinstance(value, dict):
        for key in ("messages", "inputs", "outputs", "input", "output"):
            if key in value:
                return _messages(value[key])
        return [value] if ("role" in value or "parts" in value or "content" in value) else []
    if isinstance(value, list):
        if len(value) == 1 and isinstance(value[0], list):  # [[messages]] (LangChain batch of one)
            return value[0]
        return value
    return []


_FLAT = re.compile(r"^llm\.(input|output)_messages\.(\d+)\.message\.(.+)$")


@_tolerant(lambda *a: [])
def flat_messages(attributes: dict[str, Any], direction: str) -> list[dict]:
    """OpenInference's flattened ``llm.<direction>_messages.<i>.message.*`` as message dicts."""
    prefix = f"llm.{direction}_messages."
    if prefix + "0.message.role" not in attributes and prefix + "0.message.content" not in attributes:
        return []
    found: dict[int, dict] = {}
    for key, value in attributes.items():
        if not key.startswith(prefix):
            continue
        m = _FLAT.match(key)
        if not m:
            continue
        msg = found.setdefault(int(m.group(2)), {})
        rest = m.group(3)
        if rest in ("role", "content", "name", "tool_call_id"):
            msg[rest] = value
        elif rest.startswith("tool_calls."):
            bits = rest.split(".")
            if len(bits) >= 4 and bits[1].isdigit():
                call = msg.setdefault("_calls", {}).setdefault(int(bits[1]), {})
                call[bits[-1]] = value
        elif rest.startswith("contents.") and rest.endswith("message_content.text"):
            msg["content"] = (msg.get("content") or "") + str(value)
    out = []
    for _, msg in sorted(found.items()):
        calls = msg.pop("_calls", {})
        if calls:
            msg["tool_calls"] = [{"function": {"name": c.get("name", "tool"), "arguments": c.get("arguments", "")},
                                  "id": c.get("id")} for _, c in sorted(calls.items())]
        out.append(msg)
    return out


# The keys each reader looks at (flattened OpenInference messages by their first one): a
# span without any of them -- most spans -- is answered by one set operation, not eight
# lookups and a scan of its attributes. Callers reading many spans use them too: a span without
# any of them has no request / answer (first_user_text / answer_text return ""), no call needed.
INPUT_KEYS = frozenset(("gen_ai.input.messages", "pydantic_ai.all_messages", "llm.input_messages.0.message.role",
                        "llm.input_messages.0.message.content", "input.value", "gen_ai.prompt",
                        "traceloop.entity.input", "gen_ai.task.input", "langfuse.observation.input"))
OUTPUT_KEYS = frozenset(("gen_ai.output.messages", "llm.output_messages.0.message.role",
                         "llm.output_messages.0.message.content", "final_result", "output.value",
                         "gen_ai.completion", "traceloop.entity.output", "gen_ai.task.output",
                         "langfuse.observation.output"))



@_tolerant(lambda *a: "")
def first_user_text(attributes: dict[str, Any]) -> str:
    """The request as the user put it: the first user message the span saw."""
    if INPUT_KEYS.isdisjoint(attributes):
        return ""
    for source in (attributes.get("gen_ai.input.messages"), attributes.get("pydantic_ai.all_messages"),
                   flat_messages(attributes, "input") or None, attributes.get("input.value"),
                   attributes.get("gen_ai.prompt"), attributes.get("traceloop.entity.input"),
                   attributes.get("gen_ai.task.input"), attributes.get("langfuse.observation.input")):
        if source is None:
            continue
        args = _call_args(source)
        if args:
            return args
        messages = _messages(source)
        for message in messages:
            if _role(message) == "user":
                text = _message_text(message)
                if text:
                    return text
        if isinstance(source, str) and not messages and source[:1] not in ("[", "{"):
            return source  # a plain-text input
    return ""


@_tolerant(lambda *a: "")
def answer_text(attributes: dict[str, Any]) -> str:
    """What came back: the last assistant message (its text, else the tool calls it asked for)."""
    if OUTPUT_KEYS.isdisjoint(attributes):
        return ""
    for source in (attributes.get("gen_ai.output.messages"), flat_messages(attributes, "output") or None,
                   attributes.get("final_result"), attributes.get("output.value"),
                   attributes.get("gen_ai.completion"), attributes.get("traceloop.entity.output"),
                   attributes.get("gen_ai.task.output"), attributes.get("langfuse.observation.output")):
        if source is None:
            continue
        messages = _messages(source)
        for message in reversed(messages):
            if _role(message) in ("assistant", "model", None):
                text = _message_text(message)
                if text:
                    return text
        if isinstance(source, str) and not messages and source[:1] not in ("[", "{"):
            return source
        if isinstance(source, dict) and isinstance(source.get("output"), list):  # Responses API object
            texts = [_message_text(item) or _responses_call(item) for item in source["output"]]
            text = " ".join(t for t in texts if t)
            if text:
                return text
    return ""


def _call_args(value: Any) -> str:
    """The first text argument of a decorated function's logged call ({"args": [...], "kwargs": {...}})."""
    value = loads(value)
    if isinstance(value, dict) and isinstance(value.get("args"), list) and set(value) <= {"args", "kwargs"}:
        return next((a for a in value["args"] if isinstance(a, str) and a), "")
    return ""


def _responses_call(item: Any) -> str:
    if isinstance(item, dict) and item.get("type") == "function_call":
        return f"→ {item.get('name', 'tool')}({item.get('arguments', '')})"
    return ""


@_tolerant(lambda *a: "")
def system_text(attributes: dict[str, Any]) -> str:
    if "gen_ai.system_instructions" not in attributes:
        return ""
    value = loads(attributes.get("gen_ai.system_instructions"))
    if isinstance(value, list):
        return " ".join(t for t in (_part_text(p) for p in value) if t)
    return value if isinstance(value, str) else ""


def short(text: str, limit: int = SHORT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@_tolerant(lambda value: value)
def tool_value(value: Any) -> Any:
    """A tool's input or output without the framework's envelope (LangChain ToolMessage, OpenLLMetry input_str)."""
    if isinstance(value, dict):
        if isinstance(value.get("args"), list) and set(value) <= {"args", "kwargs"}:  # a decorated call
            if len(value["args"]) == 1 and not value.get("kwargs"):
                return loads(value["args"][0])
            return value
        if set(value) >= {"input_str"}:
            return loads(value["input_str"])
        if "output" in value and len(value) <= 3:
            return tool_value(value["output"])
        if isinstance(value.get("kwargs"), dict) and "content" in value["kwargs"]:
            return loads(value["kwargs"]["content"])
        if value.get("type") == "tool" and isinstance(value.get("data"), dict) and "content" in value["data"]:
            return loads(value["data"]["content"])
    return value


def first_line_error(message: str) -> str:
    """An error message without the traceback some instrumentations append."""
    cut = message.find("Traceback (most recent call last)")
    return (message[:cut] if cut > 0 else message).strip()
