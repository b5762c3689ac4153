"""A suite's results as people and CI systems read them: a table, JSON, JUnit XML."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from agentdeck.replay.suite.runner import SuiteResult, pass_rate_text


# Characters XML 1.0 cannot carry at all (an agent's stderr may hold them): a
# JUnit file with one of them is rejected whole by every parser.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _status(r) -> str:
    if r.passed:
        return "pass"
    return "FLAKY" if r.flaky else "FAIL"


def table_lines(result: SuiteResult, clean) -> list[str]:
    """One line a case, then the pass rate per flavour. ``clean`` makes untrusted text printable."""
    repeat = max((len(r.runs) for r in result.results), default=1)
    lines = []
    width = max((len(clean(r.case.id, 40, single_line=True)) for r in result.results), default=4)
    for r in result.results:
        case_id = clean(r.case.id, 40, single_line=True)
        runs = f"  {r.passes}/{len(r.runs)}" if repeat > 1 else ""
        line = f"{_status(r):5} {case_id:{width}}  {r.case.flavour:11}{runs}"
        if not r.passed:
            failed = next(run for run in r.runs if not run.passed)
            line += f"  {clean(r.reason, 300, single_line=True)}  [{failed.trace}]"
        lines.append(line)
    lines.append("")
    for flavour, (passed, runs) in result.by_flavour().items():
        lines.append(f"{flavour:11} {pass_rate_text(passed, runs)}")
    failed = sum(not r.passed for r in result.results)
    flaky = sum(r.flaky for r in result.results)
    lines.append(f"{len(result.results) - failed} of {len(result.results)} cases passed"
                 + (f", {flaky} flaky" if flaky else "") + f" in {result.seconds:.1f}s ({result.command})")
    return lines


def to_json(result: SuiteResult) -> dict:
    return {
        "command": result.command,
        "passed": result.passed,
        "seconds": round(result.seconds, 3),
        "flavours": {f: {"passed": p, "runs": n, "rate": p / n} for f, (p, n) in result.by_flavour().items()},
        "cases": [{
            "id": r.case.id, "flavour": r.case.flavour, "passed": r.passed, "flaky": r.flaky,
            "passes": r.passes, "runs": len(r.runs), "rate": r.rate, "interval": list(r.interval()),
            "reason": r.reason,
            "runs_detail": [{"attempt": run.attempt, "passed": run.passed, "reasons": run.reasons,
                             "trace": str(run.trace), "seconds": round(run.seconds, 3)} for run in r.runs],
        } for r in result.results],
    }


def write_junit(result: SuiteResult, path: Path) -> None:
    """JUnit XML: a testsuite per flavour, a testcase per case (failed when any of its runs failed)."""
    root = ET.Element("testsuites", name="agentdeck suite", tests=str(len(result.results)),
                      failures=str(sum(not r.passed for r in result.results)), time=f"{result.seconds:.3f}")
    for flavour in dict.fromkeys(r.case.flavour for r in result.results):
        cases = [r for r in result.results if r.case.flavour == flavour]
        suite = ET.SubElement(root, "testsuite", name=flavour, tests=str(len(cases)),
                              failures=str(sum(not r.passed for r in cases)),
                              time=f"{sum(run.seconds for r in cases for run in r.runs):.3f}")
        for r in cases:
            tc = ET.SubElement(suite, "testcase", classname=f"suite.{flavour}", name=_xml(r.case.id),
                               time=f"{sum(run.seconds for run in r.runs):.3f}")
            if not r.passed:
                failed = next(run for run in r.runs if not run.passed)
                message = (f"passed {r.passes} of {len(r.runs)} runs: " if len(r.runs) > 1 else "") + r.reason
                failure = ET.SubElement(tc, "failure", message=_xml(message[:1000]),
                                        type="flaky" if r.flaky else "failed")
                failure.text = _xml("\n".join(failed.reasons) + f"\ntrace: {failed.trace}")
                if failed.stderr:
                    ET.SubElement(tc, "system-err").text = _xml(failed.stderr)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
