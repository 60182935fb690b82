"""``swa-train --nproc N``: N local processes started by torchrun's own launcher, never by ours.

torchrun (``torch.distributed.run``) starts the workers, sets their rendezvous variables, forwards
SIGTERM to them, and stops them all when one fails; each worker runs ``python -m
composer_swa.cli.train`` with the same arguments and joins the process group from that environment.
"""

from __future__ import annotations

__all__: list[str] = []


def torchrun_arguments(nproc: int, arguments: list[str]) -> list[str]:
    """The torchrun command line (without ``torchrun``) that runs ``swa-train ARGUMENTS`` in ``nproc`` processes.

    Example:
        >>> torchrun_arguments(2, ["run.yaml", "--run-dir=runs/a"])
        ['--standalone', '--nproc-per-node=2', '-m', 'composer_swa.cli.train', 'run.yaml', '--run-dir=runs/a']
    """
    # --standalone: a rendezvous on a free local port, so two runs on one machine never collide.
    return ["--standalone", f"--nproc-per-node={nproc}", "-m", "composer_swa.cli.train", *arguments]


def launch_local_processes(nproc: int, arguments: list[str]) -> int:
    """Runs ``swa-train ARGUMENTS`` in ``nproc`` local processes; returns 0 when all of them succeed.

    torchrun prints which process failed and how; the return value is then 1.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    try:
        run(get_args_parser().parse_args(torchrun_arguments(nproc, arguments)))
    except ChildFailedError:
        return 1
    return 0
