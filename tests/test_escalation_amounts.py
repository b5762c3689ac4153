"""Amounts carry their currency when the proposal names one, and never a guessed one."""

from __future__ import annotations

from hypothesis import given, strategies as st

from agentdeck.console.widgets.escalation_format import amount_label


def test_currency_from_the_params():
    assert amount_label({"amount": 2390.45, "params": {"currency": "eur"}}) == "2,390.45 EUR"
    assert amount_label({"amount": 12, "params": {"currency_code": "USD"}}) == "12.00 USD"


def test_no_currency_named_shows_the_amount_as_is():
    assert amount_label({"amount": 2390.45, "params": {"user": "alice"}}) == "2,390.45"
    assert amount_label({"amount": 5}) == "5.00"
    assert amount_label({"params": {"currency": "EUR"}}) == ""


@given(st.text(max_size=40))
def test_a_hostile_currency_is_dropped_not_shown(currency):
    label = amount_label({"amount": 1.5, "params": {"currency": currency}})
    code = label.removeprefix("1.50").strip()
    assert label == "1.50" or (label == f"1.50 {code}" and len(code) == 3 and code.isascii() and code.isupper())
