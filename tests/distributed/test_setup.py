"""Distributed set-up without a process group: data sharding, argument checks, and launch commands."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset, TensorDataset

from composer_swa import Trainer
from composer_swa.cli.launch import torchrun_arguments
from composer_swa.distributed import DistributedInfo, join_process_group
from composer_swa.distributed.sampling import set_sampler_epoch, shard_dataloader
from composer_swa.distributed.wrapping import fsdp_units

DATA = TensorDataset(torch.arange(20))


def indices(loader: object) -> list[int]:
    return [int(i) for batch in loader for i in batch[0]]  # type: ignore[attr-defined]


def test_two_shards_cover_the_dataset_once_in_one_shared_permutation() -> None:
    shards = [shard_dataloader(DataLoader(DATA, batch_size=3, shuffle=True), "train", rank, 2, seed=5) for rank in (0, 1)]
    for epoch in (0, 1):
        for shard in shards:
            set_sampler_epoch(shard, epoch)
        seen = [indices(shard) for shard in shards]
        assert sorted(seen[0] + seen[1]) == list(range(20))
        # The permutation DistributedSampler draws from seed + epoch, dealt out rank by rank.
        permutation = torch.randperm(20, generator=torch.Generator().manual_seed(5 + epoch)).tolist()
        assert seen[0] == permutation[0::2] and seen[1] == permutation[1::2]
    assert shards[0].batch_size == 3  # type: ignore[attr-defined]  # batch_size stays per process


def test_an_unshuffled_loader_is_dealt_in_order() -> None:
    shard = shard_dataloader(DataLoader(DATA, batch_size=4), "eval", 1, 2, seed=0)
    assert indices(shard) == list(range(1, 20, 2))


def test_one_process_keeps_the_loader_and_a_matching_sampler_is_kept() -> None:
    loader = DataLoader(DATA, batch_size=4)
    assert shard_dataloader(loader, "train", 0, 1, seed=0) is loader
    sharded = DataLoader(DATA, batch_size=4, sampler=DistributedSampler(DATA, num_replicas=2, rank=0))
    assert shard_dataloader(sharded, "train", 0, 2, seed=0) is sharded


def test_a_sampler_for_another_world_size_is_refused() -> None:
    loader = DataLoader(DATA, batch_size=4, sampler=DistributedSampler(DATA, num_replicas=4, rank=0))
    with pytest.raises(ValueError, match=r"DistributedSampler for 4 processes, but 2 are running"):
        shard_dataloader(loader, "train_dataloader", 0, 2, seed=0)


class Stream(IterableDataset[int]):
    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(range(4))


@pytest.mark.parametrize(
    "loader", [[1, 2], DataLoader(Stream()), DataLoader(DATA, sampler=[3, 1, 2])], ids=["list", "iterable", "custom"]
)
def test_loaders_that_cannot_be_sharded_are_used_as_given_with_a_warning(loader: object) -> None:
    with pytest.warns(UserWarning, match="all processes train on the same batches|each process reads its own share"):
        assert shard_dataloader(loader, "train_dataloader", 0, 2, seed=0) is loader  # type: ignore[arg-type]


def test_a_plain_launch_stays_single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert join_process_group() == DistributedInfo(rank=0, world_size=1, local_rank=0)


def test_a_partial_torchrun_environment_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match=r"WORLD_SIZE=2 is set but \['RANK', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT'\]"):
        join_process_group()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"parallelism": "zero3"}, r"parallelism must be one of \('ddp', 'fsdp'\) or None, got 'zero3'"),
        ({"sync_batch_norm": True}, r"sync_batch_norm=True needs CUDA .*'cpu'"),
    ],
)
def test_bad_parallel_arguments_fail_at_construction(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Trainer(torch.nn.Linear(2, 2), [(torch.zeros(1, 2), torch.zeros(1, dtype=torch.long))], "1ep", device="cpu", **arguments)


def test_fsdp_units_are_the_blocks_inside_containers() -> None:
    blocks = torch.nn.ModuleList([torch.nn.Linear(2, 2) for _ in range(3)])
    model = torch.nn.Module()
    model.embed, model.blocks, model.act, model.head = torch.nn.Linear(2, 2), blocks, torch.nn.ReLU(), torch.nn.Linear(2, 2)
    assert fsdp_units(model) == [model.embed, *blocks, model.head]


def test_swa_train_nproc_hands_the_same_arguments_to_torchrun() -> None:
    command = torchrun_arguments(4, ["run.yaml", "--set=trainer.seed=1", "--run-dir=runs/x"])
    assert command[:3] == ["--standalone", "--nproc-per-node=4", "-m"]
    assert command[3:] == ["composer_swa.cli.train", "run.yaml", "--set=trainer.seed=1", "--run-dir=runs/x"]
