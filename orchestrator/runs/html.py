"""report.html: one page per run that a person can read offline (inline
CSS, no scripts, no fonts or images from anywhere).

    the matrix          tests down, pairs across, a coloured status per cell
    against a baseline  new / still failing / fixed / ... (ktest run --baseline)
    one section per failure, known failure and flake:
                        the title; the kernel reports (title and first lines);
                        each try's outcome; the test's console segment (the
                        bytes of console.raw its markers bracket); a timeline
                        of guest markers and host actions on the host clock;
                        the pcap; the command that runs just this test again
    the manifest        run.json as written

Every string from a run is escaped. The page is built from the run
directory alone (orchestrator.runs.rundir), so it can be written again
later, for a merged run, or for a run that was moved.
"""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.plugin.record import ConsoleSpan, Record, pcap_path
from orchestrator.runs import compare as compare_mod
from orchestrator.runs import repro
from orchestrator.runs.known import KnownIssue
from orchestrator.runs.rundir import Run, load_run
from orchestrator.runs.verdicts import STATUSES, is_bad, matrix, needs_a_look, status, test_name

REPORT = "report.html"
CONSOLE_LIMIT = 256 * 1024  # bytes of one console segment shown (its end is kept)
KTEST = "ktest: "  # how every line ktest puts on the console starts
MARKER = "ktest: test "
ACTIONS = "actions.log"  # host actions (fault injection, QMP), one a line, host clock

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d1d1f; }
h1 { font-size: 1.5em; margin: 0 0 .3em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: .2em .5em; text-align: left; vertical-align: top; }
th { background: #f4f4f6; }
table.matrix td { text-align: center; font-weight: 600; min-width: 4.5em; }
td a, span.badge a { color: inherit; }
.badge { display: inline-block; padding: 0 .45em; border-radius: .3em; font-weight: 600; }
.none { color: #aaa; }
pre { background: #f7f7f9; border: 1px solid #e2e2e6; padding: .6em; overflow-x: auto;
      white-space: pre-wrap; word-break: break-all; max-height: 40em; overflow-y: auto; }
section.failure { border-left: 4px solid; padding-left: 1em; margin: 1.5em 0; }
p.title { font-family: monospace; font-size: 1.05em; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .1em 1em; }
dt { font-weight: 600; color: #555; } dd { margin: 0; font-family: monospace; }
details summary { cursor: pointer; font-weight: 600; margin: .4em 0; }
""" + "".join(
    f".badge.{st}, td.{st} {{ background: {bg}; color: {fg}; }} "
    f"section.failure.{st} {{ border-color: {fg}; }}\n"
    for st, (bg, fg) in {
        "PASS": ("#d5f5dc", "#11602a"), "FAIL": ("#f9d0d0", "#8a1111"),
        "ERROR": ("#fbe0c2", "#8a4300"), "SKIP": ("#ececec", "#555555"),
        "XFAIL": ("#dde9f8", "#1f4f8a"), "XPASS": ("#ead9f5", "#5b1d86"),
        "FLAKY": ("#fff1b8", "#6b5200"), "KNOWN": ("#d3efee", "#0d5a57"),
    }.items())


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def console_text(data: bytes) -> str:
    """Serial bytes as text to show: CRs and terminal escapes dropped, other
    control bytes made visible."""
    text = data.decode(errors="replace").replace("\r", "")
    return _CONTROL.sub("\ufffd", _ANSI.sub("", text))


def badge(st: str, href: str = "") -> str:
    inner = f'<a href="{esc(href)}">{esc(st)}</a>' if href else esc(st)
    return f'<span class="badge {esc(st)}">{inner}</span>'


# -- reading a guest's files


def console_segment(run: Run, span: ConsoleSpan) -> tuple[str, str]:
    """(text, note) of the bytes [start:end] of the span's console.raw."""
    path = run.guest_dir(span) / "console.raw"
    try:
        with open(path, "rb") as fh:
            size = max(0, span.end - span.start)
            skip = max(0, size - CONSOLE_LIMIT)
            fh.seek(span.start + skip)
            data = fh.read(size - skip)
    except OSError as e:
        return "", f"{path}: {e.strerror or e}"
    note = f"first {skip} bytes left out" if skip else ""
    return console_text(data), note


@dataclass(frozen=True)
class Event:
    time: str  # HH:MM:SS.ffffff, host clock
    source: str  # "guest" (a marker line on the console) or "host" (actions.log)
    text: str


_STAMPED = re.compile(r"^(\d\d:\d\d:\d\d\.\d{6}) (.*)$")


def _stamped_lines(path: Path) -> list[tuple[str, str]]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        m = _STAMPED.match(line)
        if m:
            out.append((m.group(1), m.group(2)))
    return out


def timeline(run: Run, r: Record) -> list[Event]:
    """The test's begin/end markers from its guests' console.log, the other
    ktest lines between them (fault markers, host notes), and the host
    actions between its first and last marker, from actions.log in the
    guest's run directory or in the run directory (same clock, HH:MM:SS.ffffff
    then what, target and reply). The clock has no date: a test that spans
    midnight loses its actions."""
    events: list[Event] = []
    dirs = list(dict.fromkeys(run.guest_dir(s) for s in _spans(r)))
    for d in dirs:
        lines = _stamped_lines(d / "console.log")
        marks = [(t, line[line.index(MARKER):]) for t, line in lines
                 if MARKER in line and _marks_test(line[line.index(MARKER):], r.test)]
        if not marks:
            continue
        first, last = marks[0][0], marks[-1][0]
        # every ktest line in between: this test's markers, fault markers
        # (ktest: fault: ...), and the host's own notes (no kernel stamp)
        events += [Event(t, "guest" if line.startswith("[") else "host",
                         line[line.index(KTEST):])
                   for t, line in lines if first <= t <= last and KTEST in line
                   and (not line[line.index(KTEST):].startswith(MARKER)
                        or _marks_test(line[line.index(KTEST):], r.test))]
        for log in dict.fromkeys((d / ACTIONS, run.path / ACTIONS)):
            events += [Event(t, "host", line) for t, line in _stamped_lines(log)
                       if first <= t <= last]
    return sorted(dict.fromkeys(events), key=lambda e: e.time)


def _marks_test(marker: str, test: str) -> bool:
    rest = marker[len(MARKER):]
    for word in ("begin ", "end "):
        if rest.startswith(word):
            return rest[len(word):] == test or rest[len(word):].startswith(test + " ")
    return False


def _spans(r: Record) -> list[ConsoleSpan]:
    spans = [s for a in r.attempts for s in a.console]
    return spans + [s for s in r.console if s not in spans]


# -- the page


def render(run: Run, comparison: compare_mod.Comparison | None = None) -> str:
    look = [r for r in run.records if needs_a_look(r)]
    anchors = {id(r): f"f{i + 1}" for i, r in enumerate(look)}
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>ktest run {esc(run.name)}</title>", f"<style>{CSS}</style>", "</head>",
        "<body>", _header(run), _matrix(run, anchors),
    ]
    if comparison is not None:
        parts.append(_comparison(comparison))
    parts.append('<section id="failures">')
    parts.append(f"<h2>Failures, known failures and flakes ({len(look)})</h2>")
    if not look:
        parts.append("<p>None.</p>")
    parts += [_failure(run, r, anchors[id(r)]) for r in look]
    parts.append("</section>")
    parts.append('<section id="manifest"><h2>Run manifest (run.json)</h2>')
    parts.append(f"<pre>{esc(json.dumps(run.manifest, indent=2, default=str))}</pre>")
    parts.append("</section></body></html>")
    return "\n".join(parts) + "\n"


def _header(run: Run) -> str:
    m = run.manifest
    counts: dict[str, int] = {}
    for r in run.records:
        counts[status(r)] = counts.get(status(r), 0) + 1
    verdict = "FAIL" if any(is_bad(r) for r in run.records) or not run.records else "PASS"
    kernel = (m.get("kernel") or {}).get("release") or "?"
    qemu_v = (m.get("qemu") or {}).get("version") or "?"
    plan = (m.get("plan") or {}).get("name") or "?"
    facts = [("plan", plan), ("kernel", kernel), ("QEMU", qemu_v),
             ("started", m.get("started") or "?"), ("ended", m.get("ended") or "?"),
             ("minutes", f"{float(m.get('seconds') or 0) / 60:.1f}"),
             ("directory", str(run.path))]
    if m.get("shard"):
        facts.append(("shard", str(m["shard"])))
    out = [f"<header><h1>ktest run {esc(run.name)} {badge(verdict)}</h1>",
           '<p id="counts">' + " ".join(f"{badge(s)} {counts[s]}" for s in STATUSES
                                        if s in counts) + "</p>",
           "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts) + "</dl>",
           "</header>"]
    return "\n".join(out)


def _matrix(run: Run, anchors: dict[int, str]) -> str:
    tests, cells = matrix(run.records)
    labels = [lab for lab in run.pairs if any((t, lab) in cells for t in tests)]
    if not tests:
        return '<section id="results"><h2>Results</h2><p>No test results.</p></section>'
    rows = ['<section id="results"><h2>Results</h2>', '<table class="matrix">',
            "<thead><tr><th>test</th>" + "".join(f"<th>{esc(lab)}</th>" for lab in labels)
            + "</tr></thead><tbody>"]
    for t in tests:
        tds = []
        for lab in labels:
            r = cells.get((t, lab))
            if r is None:
                tds.append('<td class="none">-</td>')
                continue
            st = status(r)
            href = f"#{anchors[id(r)]}" if id(r) in anchors else ""
            text = f'<a href="{href}">{esc(st)}</a>' if href else esc(st)
            tds.append(f'<td class="{esc(st)}" title="{esc(r.message)}">{text}</td>')
        rows.append(f"<tr><th>{esc(t)}</th>{''.join(tds)}</tr>")
    rows.append("</tbody></table></section>")
    return "\n".join(rows)


def _comparison(c: compare_mod.Comparison) -> str:
    out = ['<section id="compare"><h2>Against the baseline</h2>',
           f"<p>baseline <code>{esc(c.base)}</code>: {esc(compare_mod.summary_line(c))}</p>"]
    for g in compare_mod.GROUPS:
        rows = c.groups[g]
        if not rows:
            continue
        out.append(f'<h3 id="compare-{g}">{esc(compare_mod.TITLES[g])} ({len(rows)})</h3>')
        out.append("<table><thead><tr><th>pair</th><th>test</th><th>before</th><th>now</th>"
                   "<th>message</th></tr></thead><tbody>")
        for r in rows:
            why = f" (known: {r.reason})" if r.reason else ""
            out.append(f"<tr><td>{esc(r.pair)}</td><td>{esc(r.test)}</td>"
                       f"<td>{badge(r.before) if r.before != '-' else '-'}</td>"
                       f"<td>{badge(r.after) if r.after != '-' else '-'}</td>"
                       f"<td>{esc(r.message + why)}</td></tr>")
        out.append("</tbody></table>")
    out.append("</section>")
    return "\n".join(out)


def _failure(run: Run, r: Record, anchor: str) -> str:
    st = status(r)
    out = [f'<section class="failure {esc(st)}" id="{anchor}">',
           f"<h3>{badge(st)} {esc(r.pair or '?')} · {esc(test_name(r))}</h3>",
           f'<p class="title">{esc(r.message or "(no message)")}</p>']
    facts = [("test", r.test), ("outcome", r.outcome), ("phase", r.phase), ("step", r.step),
             ("duration", f"{r.duration:.1f}s"), ("started", r.started), ("ended", r.ended)]
    out.append("<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts if v)
               + "</dl>")
    if r.known is not None:
        link = (f' <a href="{esc(r.known.link)}">{esc(r.known.link)}</a>'
                if r.known.link else "")
        out.append(f'<p class="known"><b>Known issue:</b> {esc(r.known.reason)}{link} '
                   f"<small>({esc(r.known.source)})</small></p>")
    if r.attempts:
        out.append("<h4>Tries</h4><table><thead><tr><th>#</th><th>outcome</th><th>phase</th>"
                   "<th>duration</th><th>message</th></tr></thead><tbody>")
        out += [f"<tr><td>{i}</td><td>{esc(a.outcome)}</td><td>{esc(a.phase)}</td>"
                f"<td>{a.duration:.1f}s</td><td>{esc(a.message)}</td></tr>"
                for i, a in enumerate(r.attempts, 1)]
        out.append("</tbody></table>")
    if r.reports:
        out.append("<h4>Kernel reports</h4>")
        for rep in r.reports:
            who = ", ".join(x for x in (rep.kind, rep.driver or "", rep.frame or "") if x)
            out.append(f"<details open><summary>{esc(rep.title)} <small>({esc(who)})</small>"
                       f"</summary><pre>{esc(rep.excerpt)}</pre></details>")
    out.append(_console(run, r))
    out.append(_timeline(timeline(run, r)))
    pcap = run.path / pcap_path(r.test)
    if pcap.exists():
        out.append(f'<p class="pcap">Frames: <a href="{esc(pcap_path(r.test))}">'
                   f"{esc(pcap_path(r.test))}</a> ({pcap.stat().st_size} bytes)</p>")
    try:
        cmd = repro.command(run, r)
        out.append(f'<h4>Run it again</h4><pre class="repro"><code>{esc(cmd)}</code></pre>')
    except repro.ReproError as e:
        out.append(f"<p>No repro command: {esc(e)}</p>")
    out.append("</section>")
    return "\n".join(out)


def _console(run: Run, r: Record) -> str:
    spans = _spans(r)
    if not spans:
        return "<p>No console segment recorded.</p>"
    out = ["<h4>Guest console</h4>"]
    for i, span in enumerate(spans):
        text, note = console_segment(run, span)
        where = f"{Path(span.run_dir).name}/console.raw [{span.start}:{span.end}]"
        extra = f", {note}" if note else ""
        is_open = " open" if i == len(spans) - 1 else ""
        out.append(f'<details class="console"{is_open}><summary>{esc(where)} '
                   f"<small>({span.end - span.start} bytes{esc(extra)})</small></summary>"
                   f"<pre>{esc(text)}</pre></details>")
    return "\n".join(out)


def _timeline(events: Sequence[Event]) -> str:
    if not events:
        return "<p>No timeline: no marker lines of this test in console.log.</p>"
    rows = "".join(f"<tr><td>{esc(e.time)}</td><td>{esc(e.source)}</td><td>{esc(e.text)}</td>"
                   "</tr>" for e in events)
    return ('<h4>Timeline (host clock)</h4><table class="timeline"><thead><tr><th>time</th>'
            f"<th>from</th><th>what</th></tr></thead><tbody>{rows}</tbody></table>")


def write_report(out: Path, baseline: Path | None = None,
                 extra_issues: Iterable[KnownIssue] = ()) -> Path:
    """Render the run in `out` (against `baseline` if given) into
    out/report.html, replacing it whole."""
    run = load_run(out, list(extra_issues))
    comparison = None
    if baseline is not None:
        comparison = compare_mod.compare(load_run(baseline, list(extra_issues)), run)
    path = out / REPORT
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(render(run, comparison))
    os.replace(tmp, path)
    return path
