"""The console's application layer: settings, the views screens render, and the service behind them.

Nothing here imports textual: it is plain Python, called from the app's
thread workers and tested without the Pilot. Data flows one way:
files -> store -> service -> screens.
"""
