"""The task detail's payload pane: scrolled with the keys every list answers to (j/k, g/G, ctrl+d/u/f/b).

A payload runs to hundreds of lines; Textual's VerticalScroll answers only to the arrows, page and home/end
keys, so an operator reading it with less/vim keys (docs/console.md, "Keys") saw j, k, g and G do nothing.
The meanings are those of console.keymap.KEY_MAP.
"""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import VerticalScroll

from agentdeck.console.keymap import KEY_MAP


class PayloadScroll(VerticalScroll):
    BINDINGS = [
        Binding("j", "scroll_down", KEY_MAP["j"], show=False),
        Binding("k", "scroll_up", KEY_MAP["k"], show=False),
        Binding("g", "scroll_home", KEY_MAP["g"], show=False),
        Binding("G", "scroll_end", KEY_MAP["G"], show=False),
        Binding("ctrl+d", "half_page(1)", KEY_MAP["ctrl+d"], show=False),
        Binding("ctrl+u", "half_page(-1)", KEY_MAP["ctrl+u"], show=False),
        Binding("ctrl+f", "page_down", KEY_MAP["ctrl+f"], show=False),
        Binding("ctrl+b", "page_up", KEY_MAP["ctrl+b"], show=False),
    ]

    def action_half_page(self, direction: int) -> None:
        self.scroll_relative(y=direction * max(1, self.scrollable_content_region.height // 2), animate=False)
