"""The footer: Textual's, minus a restyle of every key each time it is rebuilt.

Textual's ``Footer`` rebuilds its keys whenever the focused widget or the
screen changes (every screen switch, every dialog). Each ``FooterKey``
starts ``compact=True`` and is then bound to the footer's ``compact=False``:
two class changes, each a stylesheet pass over the key, for every key, every
time. Profiling the console showed that to be the largest single cost of a
screen switch (and of the Pilot tests). ``DeckKey`` starts non-compact and
does not run its watcher at mount, so a non-compact footer mounts its keys
without restyling them; what is drawn is the same.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import groupby

from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import reactive
from textual.widgets import Footer
from textual.widgets._footer import FooterKey, FooterLabel, KeyGroup


class DeckKey(FooterKey):
    compact = reactive(False, init=False)


class DeckFooter(Footer):
    def compose(self) -> ComposeResult:
        # Textual 8.2's Footer.compose, with DeckKey for FooterKey.
        if not self._bindings_ready:
            return
        active_bindings = self.screen.active_bindings
        bindings = [
            (binding, enabled, tooltip)
            for (_, binding, enabled, tooltip) in active_bindings.values()
            if binding.show
        ]
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
        if self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:
            try:
                _node, binding, enabled, tooltip = active_bindings[self.app.COMMAND_PALETTE_BINDING]
            except KeyError:
                pass
            else:
                # (Not bound to the footer's compact: Textual's own key, compact as in Textual.)
                yield FooterKey(
                    binding.key, self.app.get_key_display(binding), binding.description, binding.action,
                    classes="-command-palette", disabled=not enabled, tooltip=binding.tooltip or binding.description,
                )
