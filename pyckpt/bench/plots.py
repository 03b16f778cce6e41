"""PNG plots of a bench run (matplotlib: the optional extra `pyckpt[bench]`)."""

import importlib.util

from .report import caption
from .runner import summarize


def available():
    """None when matplotlib can be used, else why not."""
    if importlib.util.find_spec("matplotlib") is None:
        return "matplotlib is not installed (pip install 'pyckpt[bench]'): no plots were drawn"
    return None


def _errors(spreads, scale):
    """matplotlib's yerr: distances from the median down to min and up to max."""
    return [[(s.median - s.low) * scale for s in spreads], [(s.high - s.median) * scale for s in spreads]]


def _time_vs_size(plt, summary, backends, title):
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for i, backend in enumerate(backends):
        color = f"C{i}"
        for field, style, what in (("dump_s", "-o", "dump"), ("restore_s", "--s", "restore"),
                                   ("frozen_s", ":^", "frozen")):
            points = sorted((e["mib"], e[field]) for (_w, b), e in summary.items()
                            if b == backend and e["kind"] == "anon" and e[field])
            if not points:
                continue
            xs, spreads = [p[0] for p in points], [p[1] for p in points]
            ax.errorbar(xs, [s.median for s in spreads], yerr=_errors(spreads, 1), fmt=style, color=color,
                        capsize=3, label=f"{backend} {what}")
    ax.set_xscale("log", base=2)
    sizes = sorted({e["mib"] for e in summary.values() if e["kind"] == "anon"})
    ax.set_xticks(sizes, [f"{size:g}" for size in sizes])    # 1, 16, 256 rather than 2^0, 2^4, 2^8
    ax.set_yscale("log")
    ax.set_xlabel("anonymous memory of the workload (MiB)")
    ax.set_ylabel("time (s), median with min–max")
    ax.set_title(f"Dump, restore and frozen time vs memory size\n{title}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _bars(plt, summary, backends, field, scale, ylabel, heading, title, log=False):
    workloads = list(dict.fromkeys(w for w, _b in summary))
    width = 0.8 / max(len(backends), 1)
    fig, ax = plt.subplots(figsize=(max(8, len(workloads) * 0.9), 5.5))
    for i, backend in enumerate(backends):
        xs, spreads = [], []
        for j, workload in enumerate(workloads):
            entry = summary.get((workload, backend))
            if entry and entry[field]:
                xs.append(j + (i - (len(backends) - 1) / 2) * width)
                spreads.append(entry[field])
        ax.bar(xs, [s.median * scale for s in spreads], width, yerr=_errors(spreads, scale), capsize=3,
               color=f"C{i}", label=backend)
    ax.set_xticks(range(len(workloads)))
    ax.set_xticklabels(workloads, rotation=30, ha="right")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("workload")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{heading}\n{title}", fontsize=10)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def draw(run, out_dir):
    """Write the PNGs into out_dir; [(file name, title)]."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarize(run["samples"])
    backends = list(run["backends"])
    title = caption(run["machine"]) + f" — {run['machine']['date']}"
    figures = [
        ("time-vs-size.png", "Dump, restore and frozen time vs memory size",
         lambda: _time_vs_size(plt, summary, backends, title)),
        ("frozen.png", "Time the workload was frozen during the dump, per backend",
         lambda: _bars(plt, summary, backends, "frozen_s", 1e3, "frozen time (ms), median with min–max",
                       "Time the workload saw itself frozen during dump -R", title, log=True)),
        ("image-size.png", "Image size per workload and backend",
         lambda: _bars(plt, summary, backends, "image_bytes", 1 / 2**20, "image size (MiB)",
                       "Image size (logs left out)", title, log=True)),
    ]
    written = []
    for name, heading, make in figures:
        fig = make()
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        written.append((name, heading))
    return written
