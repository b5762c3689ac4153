"""Attribute values holding JSON (tool arguments and results, agentdeck.* structures) are decoded
exactly as ``json.loads`` decodes them; anything else -- plain text, broken JSON, a byte-order
mark, non-strings -- is kept as it came."""

from __future__ import annotations

import json

from hypothesis import given, strategies as st

from agentdeck.store import otlp

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
TEXT = st.one_of(
    st.text(max_size=60),
    JSONISH.map(json.dumps),
    st.tuples(st.sampled_from(["", " ", "\n\t", "\ufeff", "\x0b", "\u2003", "\r\n "]), JSONISH.map(json.dumps),
              st.sampled_from(["", " ", "x", "}", "\n"])).map("".join),
    st.sampled_from(["NaN", "-Infinity", "tru", "nul", "[1,", '{"a": 1} {"b": 2}', "007", "-", "1e999"]),
)


def reference(value):
    if isinstance(value, str) and value.lstrip()[:1] in set('{["-0123456789tfnNI'):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def same(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True) and type(a) is type(b)


@given(TEXT)
def test_json_attribute_values_are_decoded_as_json_loads_does_and_other_text_is_kept(text):
    assert same(otlp._decoded(text), reference(text))


@given(st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(), st.lists(st.integers())))
def test_values_that_are_not_text_are_kept(value):
    assert otlp._decoded(value) == value


@given(TEXT)
def test_a_tool_value_is_its_decoded_value_or_what_is_inside_the_frameworks_envelope(text):
    from agentdeck.store import otlp_content

    assert same(otlp._tool_value(text), otlp_content.tool_value(reference(text)))
