"""The regression suite: run an agent on recorded cases, offline, and judge it before any traffic.

``case.py`` the case format; ``protocol.py`` how the runner talks to the
agent process; ``runner.py`` runs cases (in parallel, with timeouts and
repeats); ``judge.py`` judges a run's trace against the case's expectation
and the agent's contract; ``report.py`` tables, JSON and JUnit XML;
``incident.py`` turns a decided escalation or a compensated action into a
case. Documented in docs/suite.md.
"""
