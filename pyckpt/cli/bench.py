"""pyckpt bench: time dump and restore through every backend here (pyckpt's and CRIU)."""

import sys

import click

from . import options

DEFAULT_SIZES = "1,16,64,256,1024"
LARGE_SIZES = (2048, 4096)
QUICK_SIZES = "1,8"


def _sizes(_ctx, _param, value):
    if value is None:
        return None
    try:
        sizes = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter("give sizes in MiB separated by commas, e.g. 1,64,1024") from None
    if not sizes or min(sizes) < 1:
        raise click.BadParameter("sizes are whole MiB, at least 1")
    return sizes


@click.command("bench")
@options.verbose
@click.option("--rounds", type=click.IntRange(1), help="Samples per workload and backend [3; 1 with --quick].")
@click.option("--sizes", callback=_sizes, metavar="MIB,...",
              help=f"Anonymous-memory workload sizes [{DEFAULT_SIZES}; {QUICK_SIZES} with --quick].")
@click.option("--large", is_flag=True, help=f"Also {' and '.join(f'{s} MiB' for s in LARGE_SIZES)}.")
@click.option("--quick", is_flag=True, help="Small workloads, one round: a smoke run well under a minute.")
@click.option("--backends", "backend_names", metavar="NAME,...",
              help="Backends to run: ptrace, kmod, criu [every one available here].")
@click.option("--criu", "criu_path", type=click.Path(dir_okay=False), help="The criu binary [criu on PATH].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Write samples.json, samples.csv, report.md and PNG plots here.")
@click.option("--work-dir", type=click.Path(file_okay=False),
              help="Where workloads run and images are written [a temporary folder].")
@click.option("--no-pre-dump", is_flag=True, help="Do not measure pre-dumps.")
@click.option("--keep", is_flag=True, help="Keep every sample's images and logs in the work folder.")
def bench(rounds, sizes, large, quick, backend_names, criu_path, out_dir, work_dir, no_pre_dump, keep):
    """Dump and restore workloads of its own through every backend, interleaved, and report.

    Each sample: start a workload (a C program shipped with pyckpt, built on
    first use with cc), dump it with -R, ask it how long it was frozen, kill
    it, restore it, and let it check every page of its memory. Samples whose
    workload did not verify are reported as failed, without numbers; the
    exit status is then 1.
    """
    from ..bench.session import BenchConfig, run_bench

    if sizes is None:
        sizes = _sizes(None, None, QUICK_SIZES if quick else DEFAULT_SIZES)
    if large:
        sizes = sizes + [s for s in LARGE_SIZES if s not in sizes]
    config = BenchConfig(rounds=rounds or (1 if quick else 3), sizes=tuple(sizes), quick=quick,
                         backends=tuple(n.strip() for n in backend_names.split(",")) if backend_names else None,
                         criu_path=criu_path, out_dir=out_dir, work_dir=work_dir, pre_dump=not no_pre_dump,
                         keep=keep)
    ok = run_bench(config, say=lambda line: click.echo(line, err=True), show=click.echo)
    if not ok:
        sys.exit(1)


COMMANDS = (bench,)
