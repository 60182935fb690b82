"""The SWAG posterior over weights: its mean, diagonal variance and deviation matrix; sampling; safetensors files.

Sampling follows the reference code (``wjmaddox/swa_gaussian``, ``SWAG.sample_fullrank``): with
``K`` deviation columns ``D̂`` and independent standard normals ``z1`` (one per parameter element)
and ``z2`` (``K`` of them),

    θ = θ_SWA + √scale · (Σ_diag^½ z1 + D̂ z2 / √(K − 1)),

a draw from ``N(θ_SWA, scale · (Σ_diag + D̂ D̂ᵀ / (K − 1)))``. ``scale`` multiplies the covariance:
the default 0.5 is the paper's ``½ (Σ_diag + D̂D̂ᵀ/(K − 1))`` (Maddox et al. 2019, Algorithm 1).
``diagonal_only`` draws from ``N(θ_SWA, scale · Σ_diag)`` (SWAG-Diagonal). The reference divides by
``max_num_models − 1`` even before the buffer is full; here ``K`` is the number of columns held, so
the two agree once ``K = max_rank``. With fewer than two columns there is no low-rank part.

The noise is drawn in the order of the sorted parameter names, each at its whole shape, so a seed gives
the same sample from the live algorithm, from an exported file, and on every process under FSDP2 (each
keeps its slice of the whole noise: one seed on every process draws one model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from composer_swa.atomic_files import atomic_write
from composer_swa.averaging.model_average import named_state_tensors
from composer_swa.distributed.sharded import local_part, local_tensor

__all__ = ["SWAGPosterior"]

_KINDS = ("mean", "variance", "deviations")


@dataclass
class SWAGPosterior:
    """A Gaussian over a model's weights: mean, diagonal variance and low-rank deviations, by tensor name.

    Get one from a trained :class:`~composer_swa.SWAG` (``swag.posterior()``) or from an exported file
    (:meth:`from_file`); no Trainer is needed to sample from it.

    Attributes:
        mean: Every tracked tensor's mean (SWA's average: parameters and buffers; integer buffers copied).
        variance: ``Σ_diag`` of each floating parameter.
        deviations: ``D̂`` of each floating parameter, shape ``(K, *shape)``, oldest column first.
        sharded_like: Under FSDP2, the DTensor of each sharded parameter (the tensors above are this
            process's slices); empty otherwise.

    Example:
        >>> posterior = SWAGPosterior(
        ...     mean={"w": torch.zeros(2)},
        ...     variance={"w": torch.ones(2)},
        ...     deviations={"w": torch.tensor([[1.0, 0.0], [-1.0, 0.0]])},
        ... )
        >>> posterior.rank
        2
        >>> sample = posterior.sample(scale=0.5, generator=torch.Generator().manual_seed(0))
        >>> sample["w"].shape
        torch.Size([2])
    """

    mean: dict[str, torch.Tensor]
    variance: dict[str, torch.Tensor]
    deviations: dict[str, torch.Tensor]
    sharded_like: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if set(self.variance) != set(self.deviations) or not set(self.variance) <= set(self.mean):
            raise ValueError(
                "a SWAG posterior needs a variance and deviations for the same tensors, each with a mean; got variance for "
                f"{sorted(self.variance)}, deviations for {sorted(self.deviations)}, means for {sorted(self.mean)}"
            )
        ranks = sorted({len(columns) for columns in self.deviations.values()})
        if len(ranks) > 1:
            raise ValueError(f"every tensor's deviations must hold the same number of columns, got {ranks}")
        for name, variance in self.variance.items():
            shapes = {tuple(self.mean[name].shape), tuple(variance.shape), tuple(self.deviations[name].shape[1:])}
            if len(shapes) > 1:
                raise ValueError(f"SWAG tensor {name!r}: mean, variance and deviation columns differ in shape: {sorted(shapes)}")

    @property
    def rank(self) -> int:
        """``K``: the number of deviation columns."""
        return len(next(iter(self.deviations.values()))) if self.deviations else 0

    @torch.no_grad()
    def sample(
        self, scale: float = 0.5, generator: torch.Generator | None = None, diagonal_only: bool = False
    ) -> dict[str, torch.Tensor]:
        """One draw of the weights, by tensor name (fp32; tensors without a variance: their mean).

        Args:
            scale: Multiplies the covariance (0.5: the paper's; 0: the mean itself).
            generator: The random numbers (on the CPU or the tensors' device); ``None``: torch's global CPU
                generator. Under torch.distributed seed it alike on every process.
            diagonal_only: Leave out the low-rank part (SWAG-Diagonal).
        """
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale >= 0:
            raise ValueError(f"scale must be a number >= 0, got {scale!r}")
        draw_on = generator.device if generator is not None else torch.device("cpu")
        low_rank = not diagonal_only and self.rank >= 2
        z2 = torch.randn(self.rank, generator=generator, device=draw_on) if low_rank else None
        sample = {name: mean.detach().clone() for name, mean in self.mean.items()}
        for name in sorted(self.variance):
            mean, like = self.mean[name], self.sharded_like.get(name)
            z1 = torch.randn(tuple(like.shape) if like is not None else mean.shape, generator=generator, device=draw_on)
            z1 = local_part(z1, like) if like is not None else z1
            noise = self.variance[name].sqrt() * z1.to(mean.device)
            if z2 is not None:
                columns = self.deviations[name]
                noise += torch.tensordot(z2.to(columns.device), columns, dims=1).to(mean.device) / math.sqrt(self.rank - 1)
            sample[name] = mean.float() + math.sqrt(scale) * noise
        return sample

    @torch.no_grad()
    def sample_into(
        self, model: torch.nn.Module, scale: float = 0.5, generator: torch.Generator | None = None, diagonal_only: bool = False
    ) -> None:
        """Writes :meth:`sample`'s draw into ``model``'s parameters and buffers of the same names (cast to their dtypes)."""
        sample = self.sample(scale, generator, diagonal_only)
        for name, target in named_state_tensors(model):
            if name in sample:
                local_tensor(target).copy_(sample[name])

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor under one name each (``mean.<name>``, ``variance.<name>``, ``deviations.<name>``): a file's content."""
        return {f"{kind}.{name}": tensor for kind in _KINDS for name, tensor in getattr(self, kind).items()}

    def save(self, path: Path | str) -> None:
        """Writes :meth:`tensors` as one safetensors file, atomically (whole tensors only: gather shards first)."""
        if self.sharded_like:
            raise ValueError("this posterior holds FSDP2 shards; save the one swag.posterior(gather=True) returns")
        tensors = {name: tensor.detach().contiguous().clone() for name, tensor in self.tensors().items()}
        size = sum(tensor.numel() * tensor.element_size() for tensor in tensors.values())
        metadata = {"format": "pt", "content": "swag-posterior", "rank": str(self.rank)}
        atomic_write(Path(path), lambda temporary: save_file(tensors, str(temporary), metadata=metadata), size_hint=size)

    @classmethod
    def from_file(cls, path: Path | str, device: torch.device | str = "cpu") -> SWAGPosterior:
        """Reads a file :meth:`save` or ``swa-train``'s export (``SWAG-posterior.safetensors``) wrote.

        Example:
            >>> import tempfile
            >>> posterior = SWAGPosterior({"w": torch.zeros(2)}, {"w": torch.ones(2)}, {"w": torch.ones(3, 2)})
            >>> path = f"{tempfile.mkdtemp()}/posterior.safetensors"
            >>> posterior.save(path)
            >>> SWAGPosterior.from_file(path).rank
            3
        """
        parts: dict[str, dict[str, torch.Tensor]] = {kind: {} for kind in _KINDS}
        for key, tensor in load_file(str(path), device=str(device)).items():
            kind, _, name = key.partition(".")
            if kind not in parts or not name:
                raise ValueError(
                    f"{path!s} is not a SWAG posterior: tensor {key!r} is not named mean.*, variance.* or deviations.*"
                )
            parts[kind][name] = tensor
        if not parts["mean"]:
            raise ValueError(f"{path!s} is not a SWAG posterior: it holds no mean.* tensors")
        return cls(**parts)
