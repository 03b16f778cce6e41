"""What a bench run tells: the machine, the terminal table, JSON, CSV and a Markdown report."""

import csv
import dataclasses
import datetime
import json
import os
import platform
import sys

from .runner import METRICS, summarize


def machine_info():
    """The facts a reader needs to weigh the numbers."""
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "host": platform.node(),
        "kernel": platform.release(),
        "arch": platform.machine(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_gib, 1),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def caption(machine):
    return f"{machine['host']}, Linux {machine['kernel']}, {machine['cpus']} × {machine['cpu']}"


def _cell(spread, scale):
    if spread is None:
        return "-"
    med, low, high = (v * scale for v in (spread.median, spread.low, spread.high))
    digits = 0 if med >= 100 else 1 if med >= 10 else 2
    if spread.n == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} ({low:.{digits}f}–{high:.{digits}f})"


def table_rows(samples):
    """Heading and one row per (workload, backend): median (min–max) of each measure."""
    summary = summarize(samples)
    shown = [m for m in METRICS if any(entry[m[0]] for entry in summary.values())]
    heading = ["workload", "backend", "ok"] + [f"{title} {unit}" for _f, title, unit, _s in shown]
    rows = []
    for (workload, backend), entry in summary.items():
        ok = f"{entry['n']}" + (f" ({entry['failed']} FAILED)" if entry["failed"] else "")
        rows.append([workload, backend, ok] + [_cell(entry[f], scale) for f, _t, _u, scale in shown])
    return heading, rows


def text_table(samples):
    heading, rows = table_rows(samples)
    widths = [max(len(r[i]) for r in [heading] + rows) for i in range(len(heading))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in [heading] + rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(samples):
    heading, rows = table_rows(samples)
    out = ["| " + " | ".join(heading) + " |", "|" + "|".join("---" for _ in heading) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)


def write_json(path, run):
    data = dict(run)
    data["samples"] = [dataclasses.asdict(s) for s in run["samples"]]
    with open(path, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


def write_csv(path, samples):
    fields = [f.name for f in dataclasses.fields(samples[0])] if samples else []
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for s in samples:
            writer.writerow(dataclasses.asdict(s))


def write_markdown(path, run, plots, plot_note):
    m = run["machine"]
    lines = [
        "# pyckpt bench",
        "",
        f"{m['date']} on {m['host']}: Linux {m['kernel']} ({m['arch']}), {m['cpus']} × {m['cpu']}, "
        f"{m['memory_gib']} GiB; load average {m['load_average']} at the start, {run['load_average_end']} at "
        "the end. The machine may be shared: the numbers are indicative.",
        "",
        f"Command: `{run['command']}`  ",
        f"Rounds: {run['rounds']}, interleaved (each round runs every workload once through every backend, "
        "the backends' order rotated from round to round).",
        "",
        "## Backends",
        "",
    ]
    lines += [f"- **{name}**: {version}" for name, version in run["backends"].items()]
    lines += [f"- {name}: not run: {reason}" for name, reason in run["skipped_backends"].items()]
    if run["pre_dump_skipped"]:
        lines += ["", "Pre-dump not measured for: " +
                  "; ".join(f"{n} ({r})" for n, r in run["pre_dump_skipped"].items()) + "."]
    lines += [
        "",
        "## Results",
        "",
        "Median (min–max) over the samples the workload verified after its restore; `ok` counts them. "
        "Dump and restore: wall time of the command, start-up included. Frozen: the longest gap the "
        "workload's own clock loop saw during the dump (within ~1 ms; the writer loops without sleeping). "
        "RSS: peak resident memory of the dump or restore command (wait4). Image: bytes of the image "
        "files, logs left out.",
        "",
        markdown_table(run["samples"]),
        "",
    ]
    failed = [s for s in run["samples"] if not s.verified]
    if failed:
        lines += ["## Failed samples (no numbers reported)", ""]
        lines += [f"- round {s.round + 1}, {s.workload} via {s.backend}: {s.error}" for s in failed]
        lines.append("")
    lines += ["## Plots", ""]
    lines += [f"![{title}]({name})" for name, title in plots] or [plot_note]
    lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def command_line():
    return "pyckpt " + " ".join(sys.argv[1:])
