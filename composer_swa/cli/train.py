"""``swa-train``: run a YAML config, and plot a finished run."""

from __future__ import annotations

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
  swa-train constant.yaml cosine.yaml --jobs 2            # two configs at once, one table
  swa-train examples/mnist1d_swa.yaml --set trainer.seed=3 --set algorithms[0].swa_lr=0.01
  swa-train examples/mnist1d_swa.yaml --print-config      # every default filled in
  swa-train examples/mnist1d_swa.yaml --dry-run           # build everything, train nothing
  swa-train examples/mnist1d_swa.yaml --nproc 2           # 2 processes on this machine (DDP)
  swa-train plot runs/mnist1d_swa-20261121-120000
  swa-train plot runs/compare-20261121-120000             # every run in it, on the same axes
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
    from composer_swa.cli.compare import comparison_summary
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
    seconds = time.perf_counter() - start
    summary = {**summarize_run(trainer, config_path, run_dir, seconds), **comparison_summary(trainer)}
    export_weights(trainer.state, run_dir, extra={"config": config_path})  # every process: FSDP2 gathers shards
    if trainer.distributed.is_rank_zero:
        write_summary(summary, run_dir / "summary.json")
    return summary


@main.command("run", epilog=_EXAMPLES)
@click.argument("config_paths", metavar="CONFIG [CONFIG ...]", nargs=-1, required=True)
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE", help="Override a config value (YAML syntax).")
@click.option("--dry-run", is_flag=True, help="Validate and build everything, print the plan, train nothing.")
@click.option("--print-config", is_flag=True, help="Print the resolved config (every default filled in) and exit.")
@click.option("--run-dir", type=click.Path(path_type=Path), help="Run folder (default: trainer.run_dir, else runs/NAME-TIME).")
@click.option("--baseline", is_flag=True, help="Also run each config without algorithms, into its folder's baseline/.")
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Train this many runs (configs, baselines) at once, in separate processes with cores/JOBS threads each.",
)
@click.option("--child", is_flag=True, hidden=True, help="Started by --jobs: train, write the folder, print no table.")
@click.option("--threads", type=click.IntRange(min=1), hidden=True, help="torch.set_num_threads for this process.")
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
    config_paths: tuple[str, ...],
    overrides: tuple[str, ...],
    dry_run: bool,
    print_config: bool,
    run_dir: Path | None,
    baseline: bool,
    jobs: int,
    child: bool,
    threads: int | None,
    plot_after: bool,
    nproc: int,
) -> None:
    """Train the run described by CONFIG; with several CONFIGs, train each and compare them in one table."""
    import torch
    import yaml

    from composer_swa.atomic_files import DiskFullError
    from composer_swa.checkpoint.finite import NonFiniteError
    from composer_swa.checkpoint.folder_lock import SaveFolderInUseError
    from composer_swa.cli.compare import check_save_folders, format_table, plan_runs, run_in_processes
    from composer_swa.config import ConfigError, load_config
    from composer_swa.distributed.process_group import all_gather_objects, join_process_group
    from composer_swa.trainer.checks import resolve_device
    from composer_swa.trainer.guards import ModelStructureError

    if threads is not None:
        torch.set_num_threads(threads)
    try:
        configs = [(path, load_config(path, overrides)) for path in config_paths]
        if print_config or dry_run:
            for path, config in configs:
                if print_config:
                    click.echo(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), nl=False)
                else:
                    _describe_plan(config, path)
            return
        config_path, config = configs[0]
        if len(configs) > 1:
            folder = run_dir or Path("runs") / f"compare-{datetime.now():%Y%m%d-%H%M%S}"
        else:
            folder = run_dir or (Path(config.trainer.run_dir) if config.trainer.run_dir else _default_run_dir(config_path))
        runs = plan_runs(configs, folder, baseline)
        check_save_folders(runs)
        if nproc > 1 and (len(configs) > 1 or jobs > 1):
            message = f"--nproc {nproc} trains one config in several processes; give one config and no --jobs"
            message += f" (got {len(configs)} configs, --jobs {jobs})"
            _fail(ValueError(message))
        if nproc > 1 and "WORLD_SIZE" not in os.environ:
            arguments = [config_path, *(f"--set={override}" for override in overrides), f"--run-dir={folder}"]
            sys.exit(launch_local_processes(nproc, arguments + (["--baseline"] if baseline else [])))
        if len(runs) > 1:
            for planned in runs:  # a refusal at FIT_START of any run stops them all before anything is written
                _check_fit_start(planned.config, planned.config_path)
        if jobs > 1 and len(runs) > 1:
            columns = run_in_processes(runs, overrides, jobs)
            rank_zero = True
        else:
            info = join_process_group(resolve_device(config.trainer.device))
            folder = Path(all_gather_objects(str(folder))[0])  # process 0's clock names the folder
            runs = plan_runs(configs, folder, baseline)
            columns = {planned.label: _train(planned.config, planned.config_path, planned.run_dir) for planned in runs}
            rank_zero = info.is_rank_zero
    except (ConfigError, ValueError, SaveFolderInUseError, DiskFullError) as error:  # a checkpoint, a folder, a disk
        _fail(error)
    except (NonFiniteError, ModelStructureError) as error:  # the run failed: say why, without a traceback
        click.echo(f"error: {error}", err=True)
        sys.exit(1)
    if not rank_zero or child:
        return
    click.echo(f"\nrun folder: {folder}\n{format_table(columns)}")
    if plot_after:
        from composer_swa.cli.plot import plot_run

        click.echo(f"curves: {plot_run(folder)}")


def _check_fit_start(config: RunConfig, config_path: str, trainer: Any = None) -> None:
    """Runs FIT_START on a freshly built run: resolves the algorithms' times and checks conflicts, trains nothing."""
    if trainer is None:
        if not config.algorithms:
            return  # nothing that FIT_START could refuse
        from composer_swa.config import build_run

        trainer = build_run(config, Path(config_path).resolve().parent, source=config_path).trainer(loggers=[])
    try:
        trainer.engine.run_event(Event.FIT_START)
    except (ValueError, TypeError) as error:
        raise _refused_at_fit_start(config_path, error) from error


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
    _check_fit_start(config, config_path, trainer)
    click.echo("dry run: FIT_START checks passed; nothing trained, nothing written")


@main.command("plot")
@click.argument("run_dirs", metavar="RUN_DIR [RUN_DIR ...]", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="PNG to write (default: the first RUN_DIR/curves.png).")
def plot(run_dirs: tuple[Path, ...], output: Path | None) -> None:
    """Plot loss (log scale), accuracy and learning rate of every run in RUN_DIRs (with their sub-runs) on shared axes."""
    from composer_swa.cli.plot import plot_run

    try:
        click.echo(plot_run(list(run_dirs), output))
    except (FileNotFoundError, ImportError, ValueError) as error:
        _fail(error)


if __name__ == "__main__":  # how torchrun starts each process: python -m composer_swa.cli.train ...
    main()
