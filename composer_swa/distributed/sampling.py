"""Each process its share of the data: a ``DistributedSampler`` in the user's loader, and its epoch.

Under DDP every process must see different samples, or N processes train N copies of the same
batch. A ``torch.utils.data.DataLoader`` over a map-style dataset without a ``DistributedSampler``
is rebuilt around one, keeping its other settings. Its ``batch_size`` stays per process, so one
global batch is ``N * batch_size`` samples and one epoch is one pass over the dataset by all
processes together. ``DistributedSampler`` repeats up to ``N - 1`` samples so every process gets the
same number of batches (collectives need that); a dataset whose length divides evenly has none.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, IterableDataset, RandomSampler, SequentialSampler

__all__: list[str] = []


def distributed_sampler(loader: Iterable[Any]) -> DistributedSampler[Any] | None:
    """The loader's ``DistributedSampler``, if it has one."""
    for sampler in (getattr(loader, "sampler", None), getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
        if isinstance(sampler, DistributedSampler):
            return sampler
    return None


def set_sampler_epoch(loader: Iterable[Any], epoch: int) -> None:
    """Gives the loader's ``DistributedSampler`` the epoch, so each epoch shuffles differently (and alike on every rank)."""
    sampler = distributed_sampler(loader)
    if sampler is not None:
        sampler.set_epoch(epoch)


def shard_dataloader(loader: Iterable[Any], argument: str, rank: int, world_size: int, seed: int) -> Iterable[Any]:
    """``loader`` with each of ``world_size`` processes reading its own share.

    A loader that already has a ``DistributedSampler`` is kept (its replica count must match). A
    plain ``DataLoader`` is rebuilt around ``DistributedSampler(shuffle=<whether it shuffled>,
    seed=seed)``, which every rank draws the same permutation from. Anything else (an
    ``IterableDataset``, a custom batch sampler, a list) is used as given, with a warning: sharding
    it is up to the user.

    Example:
        >>> import torch
        >>> from torch.utils.data import TensorDataset
        >>> loader = DataLoader(TensorDataset(torch.arange(8)), batch_size=2)
        >>> [batch[0].tolist() for batch in shard_dataloader(loader, "train_dataloader", 1, 2, seed=0)]
        [[1, 3], [5, 7]]
    """
    if world_size <= 1:
        return loader
    existing = distributed_sampler(loader)
    if existing is not None:
        if existing.num_replicas != world_size:
            raise ValueError(
                f"{argument} has a DistributedSampler for {existing.num_replicas} processes, but {world_size} are "
                "running; build it with num_replicas=torch.distributed.get_world_size(), or leave the sampler out"
            )
        return loader
    if not isinstance(loader, DataLoader) or isinstance(loader.dataset, IterableDataset):
        warnings.warn(
            f"{argument} ({type(loader).__name__}) cannot take a DistributedSampler, so it is used as given: "
            "make sure each process reads its own share, or all of them train on the same batches",
            stacklevel=3,
        )
        return loader
    if type(loader.batch_sampler) is not BatchSampler or not isinstance(loader.sampler, (RandomSampler, SequentialSampler)):
        warnings.warn(
            f"{argument} has a custom sampler ({type(loader.sampler).__name__}), so it is used as given: "
            "shard it by rank yourself, or all processes train on the same batches",
            stacklevel=3,
        )
        return loader
    shuffle = isinstance(loader.sampler, RandomSampler)
    sampler: DistributedSampler[Any] = DistributedSampler(
        loader.dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=False
    )
    options: dict[str, Any] = {
        "batch_size": loader.batch_size,
        "num_workers": loader.num_workers,
        "collate_fn": loader.collate_fn,
        "pin_memory": loader.pin_memory,
        "drop_last": loader.drop_last,
        "timeout": loader.timeout,
        "worker_init_fn": loader.worker_init_fn,
        "generator": loader.generator,
        "persistent_workers": loader.persistent_workers,
    }
    if loader.num_workers > 0:
        options["prefetch_factor"] = loader.prefetch_factor
        options["multiprocessing_context"] = loader.multiprocessing_context
    return DataLoader(loader.dataset, sampler=sampler, **options)
