"""Rows, the printed table and its JSON form.

Ratios are taken against the raw round trip of the same run: ``p50 / raw p50`` and
``p99 / raw p50`` for sequential rows, ``reads/s / redis-benchmark -c 20 req/s`` for
concurrent rows. Latencies are in microseconds (µs), rates in calls per second.
"""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from solcache.latency.timing import Timing

__all__ = [
    "Report",
    "Row",
    "load_average",
    "machine_info",
    "render",
]

Section = Literal["sequential", "concurrent", "writes"]

#: Keys of the raw rows (``redis-benchmark``): the ratio base (-c 1, before and after the
#: sequential rows) and the throughput base (-c 20, before and after the concurrent rows).
RAW_BEFORE, RAW_AFTER = "raw.c1.before", "raw.c1.after"
RAW_THROUGHPUT, RAW_THROUGHPUT_AFTER = "raw.throughput", "raw.throughput.after"


def raw_throughput_key(clients: int) -> str:
    """Key of a ``redis-benchmark -c CLIENTS`` throughput row other than -c 20 (the default
    base, :data:`RAW_THROUGHPUT`): a concurrent row with that many callers is compared with it."""
    return f"raw.throughput.c{clients}"


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table. ``timing`` is None when the row was not measured; ``note``
    then says why ("not installed", "not available …", "failed: …")."""

    key: str
    label: str
    section: Section
    timing: Timing | None
    note: str = ""


@dataclass
class Report:
    """Everything one run measured, plus where and how (``machine``, ``commands``)."""

    title: str
    rows: list[Row]
    machine: dict[str, str] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def row(self, key: str) -> Row | None:
        """The row with ``key``, or None."""
        return next((r for r in self.rows if r.key == key), None)

    @property
    def raw_p50_us(self) -> float | None:
        """The ratio base: mean p50 of the ``redis-benchmark -c 1`` runs before and after."""
        return self._mean_raw((RAW_BEFORE, RAW_AFTER), "p50_us")

    @property
    def raw_ops_per_s(self) -> float | None:
        """The throughput base: mean requests/s of the ``redis-benchmark -c 20`` runs."""
        return self._mean_raw((RAW_THROUGHPUT, RAW_THROUGHPUT_AFTER), "ops_per_s")

    def _mean_raw(self, keys: tuple[str, ...], field: str) -> float | None:
        values = [
            float(getattr(r.timing, field))
            for k in keys
            if (r := self.row(k)) is not None and r.timing is not None
        ]
        return statistics.fmean(values) if values else None

    def ratio(self, value: float | None) -> float | None:
        """``value`` (µs) divided by the raw p50, when both are known."""
        base = self.raw_p50_us
        return value / base if value is not None and base else None

    def baseline(self, row: Row) -> tuple[str, float | None]:
        """The ``redis-benchmark`` setting a concurrent row is compared with and its rate: ``-c
        N`` for N callers when the run measured it, else ``-c 20``."""
        callers = row.timing.callers if row.timing is not None else 20
        own = self.row(raw_throughput_key(callers))
        if own is not None and own.timing is not None:
            return f"-c {callers}", own.timing.ops_per_s
        return "-c 20", self.raw_ops_per_s

    def share(self, row: Row) -> float | None:
        """``row``'s throughput as a fraction of its :meth:`baseline`'s."""
        base = self.baseline(row)[1]
        return row.timing.ops_per_s / base if row.timing is not None and base else None

    def to_json(self) -> dict[str, Any]:
        """The rows, ratios and machine info as JSON-ready data."""
        rows = []
        for r in self.rows:
            d: dict[str, Any] = {"key": r.key, "label": r.label, "section": r.section}
            d["note"] = r.note or None
            d.update(asdict(r.timing) if r.timing is not None else {})
            if r.timing is not None:
                d["p50_over_raw_p50"] = self.ratio(r.timing.p50_us)
                d["p99_over_raw_p50"] = self.ratio(r.timing.p99_us)
                if r.section == "concurrent":
                    d["share_of_raw_throughput"] = self.share(r)
                    d["raw_throughput_baseline"] = f"redis-benchmark {self.baseline(r)[0]} -P 1"
            rows.append(d)
        return {
            "title": self.title,
            "units": {"latency": "µs", "rate": "calls per second"},
            "raw_p50_us": self.raw_p50_us,
            "raw_throughput_per_s": self.raw_ops_per_s,
            "rows": rows,
            "machine": self.machine,
            "settings": self.settings,
            "commands": self.commands,
        }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, space-separated."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def machine_info() -> dict[str, str]:
    """CPU count (``nproc``: usable CPUs), CPU model, load average now, OS, Python."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "nproc": str(usable if usable is not None else os.cpu_count()),
        "cpu_count": str(os.cpu_count()),
        "cpu_model": _cpu_model(),
        "load_average_start": load_average(),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
    }


# --- text -------------------------------------------------------------------------------


def _f(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _label_width(report: Report) -> int:
    return max([44, *(len(r.label) + 2 for r in report.rows)])


def _seq_lines(report: Report, rows: list[Row]) -> list[str]:
    w = _label_width(report)
    head = f"{'client / operation':<{w}}{'calls':>8}{'p50 µs':>10}{'p99 µs':>10}{'mean µs':>10}"
    lines = [head + f"{'CPU µs':>8}{'ops/s':>10}{'p50/raw':>9}{'p99/raw':>9}"]
    for r in rows:
        t = r.timing
        if t is None:
            lines.append(f"{r.label:<{w}}  {r.note}")
            continue
        lines.append(
            f"{r.label:<{w}}{t.calls:>8}{_f(t.p50_us):>10}{_f(t.p99_us):>10}{_f(t.mean_us):>10}"
            f"{_f(t.cpu_us):>8}{t.ops_per_s:>10,.0f}{_x(report.ratio(t.p50_us)):>9}"
            f"{_x(report.ratio(t.p99_us)):>9}"
        )
    return lines


def _conc_lines(report: Report, rows: list[Row]) -> list[str]:
    w = _label_width(report)
    head = f"{'client / operation':<{w}}{'callers':>8}{'reads/s':>10}{'p50 µs':>10}{'p99 µs':>10}"
    lines = [head + f"{'CPU µs':>8}{'vs raw':>8}{'  raw setting':<16}{'errors':>7}"]
    for r in rows:
        t = r.timing
        if t is None:
            lines.append(f"{r.label:<{w}}  {r.note}")
            continue
        share = report.share(r)
        setting = "" if r.key.startswith("raw.") else report.baseline(r)[0]
        lines.append(
            f"{r.label:<{w}}{t.callers:>8}{t.ops_per_s:>10,.0f}{_f(t.p50_us):>10}"
            f"{_f(t.p99_us):>10}{_f(t.cpu_us):>8}{'-' if share is None else f'{share:.0%}':>8}"
            f"{'  ' + setting:<16}{t.errors:>7}"
            + (f"  (first: {t.first_error})" if t.first_error else "")
        )
    return lines


def render(report: Report, extra: Sequence[str] = ()) -> str:
    """The report as plain text: the tables, the ``extra`` lines (after a blank line, when
    there are any), machine info and the commands run."""
    s = report.settings
    base = report.raw_p50_us
    out = [report.title, ""]
    seq = [r for r in report.rows if r.section == "sequential"]
    rounds = s.get("rounds")
    how = f"median of {rounds} rounds" if rounds else "mean of the redis-benchmark -c 1 runs"
    out.append(
        f"Sequential calls, each timed (µs), after {s.get('warmup', '?')} untimed warm-up calls"
        + (f"; medians over {rounds} interleaved rounds" if rounds else "")
        + "; "
        + (
            f"ratios to raw p50 = {base:.1f} µs ({how})"
            if base
            else "no raw round trip, so no ratios"
        )
        + "; CPU µs: this process's CPU time per call (every thread)"
    )
    out += _seq_lines(report, seq)
    conc = [r for r in report.rows if r.section == "concurrent"]
    if conc:
        out += [
            "",
            f"Concurrent callers (asyncio.gather, one shared client; pool of "
            f"{s.get('pool_max_size', '?')} connections), about {s.get('calls', '?')} reads "
            "per row; "
            + (
                "each row's reads/s against redis-benchmark -P 1 with as many connections as "
                "callers (raw setting; -c 20 when that was not run)"
                if report.raw_ops_per_s
                else "no raw throughput, so no shares"
            ),
        ]
        out += _conc_lines(report, conc)
    writes = [r for r in report.rows if r.section == "writes"]
    if writes:
        out += ["", "Writes and streams (solcache async, µs per call)"]
        out += _seq_lines(report, writes)
    if extra:
        out += ["", *extra]
    out += ["", "Machine and software:"]
    out += [f"  {k}: {v}" for k, v in report.machine.items()]
    out += ["", "Commands:"]
    out += [f"  {c}" for c in report.commands]
    return "\n".join(out)
