"""One-line summaries of trace events for the console (plain strings: the screen passes them through console.safe).

The wording lives in ``replay/step_text.py`` beside Replay's step titles, one row per event kind.
"""

from __future__ import annotations

from agentdeck.replay.step_text import compact_json, step_summary

__all__ = ["compact_json", "step_summary"]
