"""The footer: Textual's, minus a restyle of every key each time it is rebuilt.

Textual's ``Footer`` rebuilds its keys whenever the focused widget or the
screen changes (every screen switch, every dialog). Each ``FooterKey``
starts ``compact=True`` and is then bound to the footer's ``compact=False``:
two class changes, each a stylesheet pass over the key, for every key, every
time. Profiling the console showed that to be the largest single cost of a
screen switch (and of the Pilot tests). ``DeckKey`` starts non-compact and
does not run its watcher at mount, so a non-compact footer mounts its keys
without restyling them; what is drawn is the same.

Quit and Help (``q``, ``?``) and the palette sit at the right edge,
outside the screen's keys: on an 80-column terminal the screen's keys are
cut at the end, and the way out and the way to every other key must not be.

A key that does not fit whole before them is hidden, not cut mid-word
("s S" for "s Suite fails" told nobody anything); ? lists every key.

It also rebuilds only when what it shows changed: Textual rebuilds the
footer on every focus restore (every return to a screen), even when the
screen's keys are the ones already shown.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import groupby

from textual import events
from textual.app import ComposeResult
from textual.containers import HorizontalGroup
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Footer
from textual.widgets._footer import FooterKey, FooterLabel, KeyGroup


class DeckKey(FooterKey):
    compact = reactive(False, init=False)


PINNED_ACTIONS = ("app.toggle_help", "app.quit", "toggle_help", "quit")  # always shown, at the right edge


class DeckFooter(Footer):
    DEFAULT_CSS = """
    DeckFooter .deck-pinned { dock: right; width: auto; height: 1; border-left: vkey $foreground 20%; }
    DeckFooter .deck-pinned FooterKey { margin: 0; }
    DeckFooter.-compact { padding-left: 1; }
    DeckFooter.-compact .deck-pinned FooterKey { margin: 0 0 0 1; }
    """
    _shown: tuple | None = None  # what the keys were built from
    NARROW = 100  # columns: below this the keys are compact (one space between them, not three)

    def on_resize(self, event: events.Resize) -> None:
        self.compact = event.size.width < self.NARROW
        self.call_after_refresh(self._hide_cut_keys)

    def watch_compact(self, compact: bool) -> None:
        self.call_after_refresh(self._hide_cut_keys)  # the keys' widths change with it

    def _hide_cut_keys(self) -> None:
        """Hide the screen's keys that would be drawn cut under the pinned keys (or the edge).

        Visibility, not display: a hidden key keeps its place, so every key that fits comes back
        when the terminal widens. Positions come from the footer's arrangement, which (unlike
        `region`) includes the hidden keys."""
        if not self.is_mounted or not self.size.width:
            return
        placed = {p.widget: p.region for p in self.arrange(self.size).placements}
        pinned = [child for child in self.children if child.has_class("deck-pinned")]
        limit = placed[pinned[0]].x if pinned and pinned[0] in placed else self.size.width
        for child in self.children:
            if child in pinned or child not in placed:
                continue
            fits = placed[child].right <= limit
            if (child.styles.visibility == "hidden") == fits:
                child.styles.visibility = "visible" if fits else "hidden"

    def _signature(self, screen) -> tuple:
        return tuple((b.key, b.description, b.action, b.show, enabled, tooltip, b.group)
                     for (_, b, enabled, tooltip) in screen.active_bindings.values())

    def bindings_changed(self, screen) -> None:
        if self._shown is not None and screen is self.screen and self._signature(screen) == self._shown:
            self._bindings_ready = True
            return  # the same keys as shown: nothing to rebuild
        super().bindings_changed(screen)

    def compose(self) -> ComposeResult:
        # Textual 8.2's Footer.compose, with DeckKey for FooterKey.
        if not self._bindings_ready:
            return
        active_bindings = self.screen.active_bindings
        self._shown = self._signature(self.screen)
        bindings = [
            (binding, enabled, tooltip)
            for (_, binding, enabled, tooltip) in active_bindings.values()
            if binding.show
        ]
        pinned = [b for b in bindings if b[0].action in PINNED_ACTIONS]
        bindings = [b for b in bindings if b[0].action not in PINNED_ACTIONS]
        action_to_bindings: defaultdict[str, list[tuple[Binding, bool, str]]] = defaultdict(list)
        for binding, enabled, tooltip in bindings:
            action_to_bindings[binding.action].append((binding, enabled, tooltip))

        self.styles.grid_size_columns = len(action_to_bindings)

        for group, multi_bindings_iterable in groupby(
            action_to_bindings.values(),
            lambda multi_bindings_: multi_bindings_[0][0].group,
        ):
            multi_bindings = list(multi_bindings_iterable)
            if group is not None and len(multi_bindings) > 1:
                with KeyGroup(classes="-compact" if group.compact else ""):
                    for multi_binding in multi_bindings:
                        binding, enabled, tooltip = multi_binding[0]
                        yield DeckKey(
                            binding.key, self.app.get_key_display(binding), "", binding.action,
                            disabled=not enabled, tooltip=tooltip or binding.description, classes="-grouped",
                        ).data_bind(compact=Footer.compact)
                yield FooterLabel(group.description)
            else:
                for multi_binding in multi_bindings:
                    binding, enabled, tooltip = multi_binding[0]
                    yield DeckKey(
                        binding.key, self.app.get_key_display(binding), binding.description, binding.action,
                        disabled=not enabled, tooltip=tooltip,
                    ).data_bind(compact=Footer.compact)
        keys: list[FooterKey] = [
            DeckKey(binding.key, self.app.get_key_display(binding), binding.description, binding.action,
                    disabled=not enabled, tooltip=tooltip).data_bind(compact=Footer.compact)
            for binding, enabled, tooltip in sorted(pinned, key=lambda b: b[0].action.endswith("quit"))
        ]
        if self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:
            try:
                _node, binding, enabled, tooltip = active_bindings[self.app.COMMAND_PALETTE_BINDING]
            except KeyError:
                pass
            else:
                keys.append(FooterKey(
                    binding.key, self.app.get_key_display(binding), binding.description, binding.action,
                    disabled=not enabled, tooltip=binding.tooltip or binding.description,
                ))
        if keys:
            yield HorizontalGroup(*keys, classes="deck-pinned")
        self.call_after_refresh(self._hide_cut_keys)
