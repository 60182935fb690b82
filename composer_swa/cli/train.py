"""``swa-train``: run a YAML config, and plot a finished run."""

from __future__ import annotations

import copy
import os
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

# Only what --help needs is imported here (click, the light event types); torch, the trainer and the
# config schemas load inside the commands, so `swa-train --help` starts fast.
from composer_swa.cli.launch import launch_local_processes
from composer_swa.events import Callback, Event

if TYPE_CHECKING:
    from composer_swa.config import ConfigError, RunConfig, RunParts
    from composer_swa.loggers import Logger
    from composer_swa.state import State

__all__ = ["main"]

_EXAMPLES = """\b
Examples:
  swa-train examples/mnist1d_swa.yaml
  swa-train examples/mnist1d_swa.yaml --baseline          # also run it without algorithms
  swa-train examples/mnist1d_swa.yaml --set trainer.seed=3 --set algorithms[0].swa_lr=0.01
  swa-train examples/mnist1d_swa.yaml --print-config      # every default filled in
  swa-train examples/mnist1d_swa.yaml --dry-run           # build everything, train nothing
  swa-train examples/mnist1d_swa.yaml --nproc 2           # 2 processes on this machine (DDP)
  swa-train plot runs/mnist1d_swa-20261121-120000
"""


class _RunByDefault(click.Group):
    """``swa-train CONFIG`` runs a config; ``swa-train plot RUN_DIR`` is the one subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_RunByDefault, epilog=_EXAMPLES, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Train from a YAML config (swa-train CONFIG ...), or plot a run (swa-train plot RUN_DIR)."""


class _OpenRunFolder(Callback):
    """Creates the run folder at FIT_START, after the algorithms' checks passed: a run that is refused writes nothing."""

    def __init__(self, run_dir: Path, config: RunConfig, parts: RunParts) -> None:
        self.run_dir, self.config, self.parts = run_dir, config, parts
        self.opened = False

    def fit_start(self, state: State, logger: Logger) -> None:
        from composer_swa.cli.run_folder import write_resolved_config
        from composer_swa.config import ConfigError
        from composer_swa.distributed import distributed_info

        self.opened = True
        if not distributed_info().is_rank_zero:
            return
        # The loggers first: one that cannot be built (a missing package) leaves no run folder behind.
        created = not self.run_dir.exists()
        try:
            destinations = self.parts.loggers(self.run_dir)
        except ConfigError:
            if created:
                shutil.rmtree(self.run_dir, ignore_errors=True)
            raise
        self.run_dir.mkdir(parents=True, exist_ok=True)
        write_resolved_config(self.config, self.run_dir / "config.yaml")
        logger.destinations[:] = destinations
        logger.log_message(f"run folder: {self.run_dir}", step=state.timestamp.batch_count)


def _fail(error: Exception) -> None:
    click.echo(f"error: {error}", err=True)
    sys.exit(2)


def _refused_at_fit_start(config_path: str, error: Exception) -> ConfigError:
    """An algorithm refused the run once its times resolved (a window past the end, a conflict)."""
    from composer_swa.config import ConfigError

    return ConfigError(config_path, [f"refused at FIT_START, once times resolved against the run: {error}"])


def _default_run_dir(config_path: str) -> Path:
    return Path("runs") / f"{Path(config_path).stem}-{datetime.now():%Y%m%d-%H%M%S}"


def _train(config: RunConfig, config_path: str, run_dir: Path) -> dict[str, Any]:
    """One run into ``run_dir``; returns its summary."""
    from composer_swa.checkpoint import export_weights
    from composer_swa.cli.run_folder import summarize_run, write_summary
    from composer_swa.config import build_run

    parts = build_run(config, Path(config_path).resolve().parent, source=config_path)
    trainer = parts.trainer(loggers=[])  # the run folder's loggers join at FIT_START
    opener = _OpenRunFolder(run_dir, config, parts)
    trainer.state.callbacks.insert(0, opener)
    trainer.engine.refresh()
    start = time.perf_counter()
    try:
        trainer.fit()
    except (ValueError, TypeError) as error:
        if opener.opened:
            raise
        raise _refused_at_fit_start(config_path, error) from error
    finally:
        trainer.logger.close()
    summary = summarize_run(trainer, config_path, run_dir, time.perf_counter() - start)
    export_weights(trainer.state, run_dir, extra={"config": config_path})  # every process: FSDP2 gathers shards
    if trainer.distributed.is_rank_zero:
        write_summary(summary, run_dir / "summary.json")
    return summary


def _table(columns: dict[str, dict[str, Any]]) -> str:
    metrics = sorted({key for summary in columns.values() for key in summary["final_metrics"]})
    rows = [["", *columns]]
    rows += [[metric, *(f"{s['final_metrics'].get(metric, float('nan')):.4f}" for s in columns.values())] for metric in metrics]
    rows.append(["time (s)", *(f"{s['seconds']:.1f}" for s in columns.values())])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in rows)


@main.command("run", epilog=_EXAMPLES)
@click.argument("config_path", metavar="CONFIG")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE", help="Override a config value (YAML syntax).")
@click.option("--dry-run", is_flag=True, help="Validate and build everything, print the plan, train nothing.")
@click.option("--print-config", is_flag=True, help="Print the resolved config (every default filled in) and exit.")
@click.option("--run-dir", type=click.Path(path_type=Path), help="Run folder (default: trainer.run_dir, else runs/NAME-TIME).")
@click.option("--baseline", is_flag=True, help="Also run the same config without algorithms, into RUN_DIR/baseline.")
@click.option("--plot", "plot_after", is_flag=True, help="Write curves.png into the run folder at the end (needs matplotlib).")
@click.option(
    "--nproc",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes on this machine, started by torchrun's launcher (DDP, or trainer.parallelism). "
    "For several machines run `torchrun ... -m composer_swa.cli.train CONFIG` on each instead.",
)
def run(
    config_path: str,
    overrides: tuple[str, ...],
    dry_run: bool,
    print_config: bool,
    run_dir: Path | None,
    baseline: bool,
    plot_after: bool,
    nproc: int,
) -> None:
    """Train the run described by CONFIG."""
    import yaml

    from composer_swa.config import ConfigError, load_config
    from composer_swa.distributed import all_gather_objects, join_process_group
    from composer_swa.trainer.checks import resolve_device

    try:
        config = load_config(config_path, overrides)
        if print_config:
            click.echo(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), nl=False)
            return
        if dry_run:
            _describe_plan(config, config_path)
            return
        folder = run_dir or (Path(config.trainer.run_dir) if config.trainer.run_dir else _default_run_dir(config_path))
        if nproc > 1 and "WORLD_SIZE" not in os.environ:
            arguments = [config_path, *(f"--set={override}" for override in overrides), f"--run-dir={folder}"]
            sys.exit(launch_local_processes(nproc, arguments + (["--baseline"] if baseline else [])))
        info = join_process_group(resolve_device(config.trainer.device))
        folder = Path(all_gather_objects(str(folder))[0])  # process 0's clock names the folder
        columns = {"with algorithms" if baseline else "run": _train(config, config_path, folder)}
        if baseline:
            plain = copy.deepcopy(config)
            plain.algorithms = []
            columns["baseline (no algorithms)"] = _train(plain, config_path, folder / "baseline")
    except ConfigError as error:
        _fail(error)
    if not info.is_rank_zero:
        return
    click.echo(f"\nrun folder: {folder}\n{_table(columns)}")
    if plot_after:
        from composer_swa.cli.plot import plot_run

        click.echo(f"curves: {plot_run(folder)}")


def _describe_plan(config: RunConfig, config_path: str) -> None:
    from composer_swa.config import build_run

    parts = build_run(config, Path(config_path).resolve().parent, source=config_path)
    trainer = parts.trainer(loggers=[])
    state = trainer.state
    parameters = sum(p.numel() for p in state.model.parameters())
    click.echo(f"config:     {config_path} (valid)")
    click.echo(f"model:      {type(state.model).__name__}, {parameters:,} parameters")
    samples = len(parts.train_dataloader.dataset)  # type: ignore[arg-type]
    click.echo(f"data:       {samples:,} training samples, {state.batches_per_epoch} batches an epoch")
    click.echo(f"run:        {config.trainer.max_duration} = {state.max_batches} batches on {trainer.device}")
    scheduler = type(parts.scheduler).__name__ if parts.scheduler else "none"
    click.echo(f"optimizer:  {type(parts.optimizer).__name__}; scheduler: {scheduler}")
    click.echo(f"algorithms: {', '.join(a.name for a in parts.algorithms) or 'none'}")
    try:
        trainer.engine.run_event(Event.FIT_START)  # resolves the algorithms' times and checks conflicts
    except (ValueError, TypeError) as error:
        raise _refused_at_fit_start(config_path, error) from error
    click.echo("dry run: FIT_START checks passed; nothing trained, nothing written")


@main.command("plot")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="PNG to write (default: RUN_DIR/curves.png).")
def plot(run_dir: Path, output: Path | None) -> None:
    """Plot the loss and accuracy curves of RUN_DIR, with the averaging windows shaded."""
    from composer_swa.cli.plot import plot_run

    try:
        click.echo(plot_run(run_dir, output))
    except (FileNotFoundError, ImportError, ValueError) as error:
        _fail(error)


if __name__ == "__main__":  # how torchrun starts each process: python -m composer_swa.cli.train ...
    main()
