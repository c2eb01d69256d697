"""`replay info` and `replay csv` for flight logs: the same rate and gap accounting as for bags."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from marlstack.replay.flightlog import FlightLog
from marlstack.replay.info import stream_stats

INT64_SECONDS = 9.2e9  # s: the int64 nanosecond clock's range


def flight_info(log: FlightLog) -> dict[str, Any]:
    streams = []
    for s in sorted(log.streams.values(), key=lambda s: s.name):
        t = s.t_s[np.abs(s.t_s) < INT64_SECONDS]   # a corrupt frame's time can lie past 2262 (or be NaN): not a rate
        t_ns = np.sort((t * 1e9).astype(np.int64))
        rate, period, gaps, missing = stream_stats(t_ns)
        streams.append({"stream": s.name, "type": s.type, "count": len(s.t_s), "fields": len(s.fields),
                        "first_s": float(s.t_s[0]) if len(s.t_s) else None,
                        "last_s": float(s.t_s[-1]) if len(s.t_s) else None,
                        "rate_hz": rate, "period_s": period, "gaps": gaps, "missing": missing})
    errors = [m for m in log.messages if m[1] in ("EMERG", "ALERT", "CRIT", "ERROR")]
    return {
        "log": str(log.path), "format": log.format, "size_bytes": log.size_bytes,
        "start_s": log.start_s, "end_s": log.end_s, "clock": log.clock, "duration_s": log.end_s - log.start_s,
        "messages": sum(s["count"] for s in streams), "info": log.info,
        "parameters": len(log.parameters), "changed_parameters": [list(c) for c in log.changed_parameters],
        "logged_messages": [list(m) for m in log.messages], "logged_errors": len(errors),
        "dropouts": [{"t_s": t, "duration_s": d} for t, d in log.dropouts],
        "dropout_total_s": sum(d for _, d in log.dropouts),
        "modes": [list(m) for m in log.state.modes],
        "complete": not log.problems, "problems": list(log.problems), "streams": streams,
    }


def format_flight_info(info: dict[str, Any]) -> str:
    i = info["info"]
    vehicle = ", ".join(f"{k}={v}" for k, v in i.items()) or "-"
    lines = [f"log       {info['log']}  ({info['format']}, {info['size_bytes']} bytes)",
             f"vehicle   {vehicle}",
             f"duration  {info['duration_s']:.3f} s  ({info['start_s']:.3f} .. {info['end_s']:.3f} {info['clock']})",
             f"messages  {info['messages']} in {len(info['streams'])} streams; {info['parameters']} parameters "
             f"({len(info['changed_parameters'])} changed in flight); {len(info['logged_messages'])} logged text "
             f"messages ({info['logged_errors']} errors)",
             f"dropouts  {len(info['dropouts'])} ({info['dropout_total_s']:.3f} s lost by the logger)",
             f"modes     {' -> '.join(m for _, m in info['modes']) or '-'}", ""]
    head = f"{'stream':<32} {'type':<28} {'count':>7} {'fields':>6} {'rate Hz':>8} {'gaps':>5} {'missing':>8}"
    lines += [head, "-" * len(head)]
    for s in info["streams"]:
        rate = f"{s['rate_hz']:.2f}" if s["rate_hz"] is not None else "-"
        lines.append(f"{s['stream']:<32} {s['type']:<28} {s['count']:>7} {s['fields']:>6} {rate:>8} "
                     f"{len(s['gaps']):>5} {s['missing']:>8}")
    for t, level, text in info["logged_messages"]:
        if level in ("EMERG", "ALERT", "CRIT", "ERROR", "WARNING"):
            lines.append(f"log {level.lower()}: +{t - info['start_s']:.3f} s {text}")
    for p in info["problems"]:
        lines.append(f"DAMAGED: {p}")
    return "\n".join(lines)


def stream_to_csv(log: FlightLog, name: str, out: Path) -> int:
    """One row per sample: t_s then every field (unit in the header where known); KeyError if absent."""
    s = log.stream(name)
    cols = list(s.fields)
    header = ["t_s", *(f"{c} [{s.units[c]}]" if c in s.units else c for c in cols)]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        columns = [s.fields[c].tolist() for c in cols]
        for k, t in enumerate(s.t_s.tolist()):
            w.writerow([f"{t:.6f}", *(col[k] for col in columns)])
    return len(s.t_s)
