"""Data parallelism on torch.distributed: joining torchrun's process group, sharding data, wrapping models.

The Trainer does all of it by itself. A loop of your own under torchrun (with an
:class:`~composer_swa.integrations.AlgorithmRunner`) joins the process group and asks where it stands.

Example:
    >>> from composer_swa.distributed import join_process_group
    >>> join_process_group()  # a plain launch stays one process
    DistributedInfo(rank=0, world_size=1, local_rank=0)
"""

from composer_swa.distributed.process_group import DistributedInfo, distributed_info, join_process_group

__all__ = ["DistributedInfo", "distributed_info", "join_process_group"]
