"""Data parallelism on torch.distributed: joining torchrun's process group, sharding data, wrapping models."""

from composer_swa.distributed.process_group import (
    DistributedInfo,
    all_gather_objects,
    any_rank,
    distributed_info,
    is_distributed,
    join_process_group,
    reduce_sum,
)
from composer_swa.distributed.sampling import distributed_sampler, set_sampler_epoch, shard_dataloader
from composer_swa.distributed.wrapping import PARALLELISMS, check_parallelism, is_sharded, shard_model, wrap_for_training

__all__ = [
    "PARALLELISMS",
    "DistributedInfo",
    "all_gather_objects",
    "any_rank",
    "check_parallelism",
    "distributed_info",
    "distributed_sampler",
    "is_distributed",
    "is_sharded",
    "join_process_group",
    "reduce_sum",
    "set_sampler_epoch",
    "shard_dataloader",
    "shard_model",
    "wrap_for_training",
]
