"""Post-hoc EMA: power-function EMAs of the weights, stored as snapshots to choose the EMA length after training."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from composer_swa.algorithms.arguments import check_flag, is_number
from composer_swa.averaging.model_average import ModelAverage
from composer_swa.averaging.posthoc_index import INDEX_NAME, SnapshotEntry, read_index, snapshot_name, write_index
from composer_swa.averaging.power_ema import MAX_SIGMA_REL, decay, sigma_rel_to_gamma
from composer_swa.events import Algorithm, Event
from composer_swa.safetensors_format import DTYPES, slices, write_stream
from composer_swa.schedule import ResolvedSchedule, Schedule
from composer_swa.time import Time

if TYPE_CHECKING:
    from composer_swa.loggers import Logger
    from composer_swa.state import State

__all__ = ["PostHocEMA"]

#: The folder under the Trainer's ``save_folder`` that holds the snapshots when ``snapshot_dir`` is not given.
DEFAULT_SUBFOLDER = "posthoc_ema"


class PostHocEMA(Algorithm):
    """Power-function EMAs of the weights, stored as snapshots, so that any EMA length can be chosen after
    training (Karras et al., "Analyzing and Improving the Training Dynamics of Diffusion Models", CVPR
    2024, the EDM2 paper, https://arxiv.org/abs/2312.02696).

    For each ``σ_rel`` in ``sigma_rels`` it keeps one fp32 average of the parameters and floating
    buffers (integer buffers are copied), updated after every batch: at batch count ``t`` (1, 2, ...),
    ``ema ← β(t)·ema + (1 − β(t))·w`` with ``β(t) = (1 − 1/t)^(γ+1)`` and ``γ`` from ``σ_rel`` (see
    :mod:`composer_swa.averaging.power_ema`); the first update copies the weights. The average read
    at step ``t`` weighs the weights of step ``s`` by ``∫_{s−1}^{s} (γ+1) τ^γ / t^(γ+1) dτ``: its
    length grows with the run, ``σ_rel`` being its standard deviation relative to ``t``.

    Every ``snapshot_interval``, and at FIT_END when the last batch was not a snapshot, each average
    is written as ``ema-sigma_rel{σ}-ba{t}.safetensors`` into ``snapshot_dir`` (streamed slice by slice
    and atomically; fp32) and ``posthoc_ema.json`` lists every snapshot's file, step, ``γ`` and
    ``σ_rel`` (:mod:`composer_swa.averaging.posthoc_index`). After training,
    :func:`~composer_swa.merging.posthoc.reconstruct` combines the snapshots into the
    EMA of any other ``σ_rel`` by least squares. Each snapshot set takes ``len(sigma_rels)`` files of
    4 bytes per averaged element; memory holds the averages only (one fp32 copy each).

    The model's weights are left alone: the averages live beside it, in the snapshot files.

    Resuming: the checkpoint holds the averages, the step of the last update and the index, so a
    resumed run appends to the same set. Snapshots a failed attempt wrote past the checkpoint are
    deleted, as the resumed run writes them again. A fresh run refuses a folder that already holds
    snapshots. Once averaging has begun, ``sigma_rels`` may not change (a ValueError).

    Args:
        sigma_rels: The tracked profiles' lengths, each in ``(0, 0.3003]`` (EDM2 tracks 0.05 and 0.10).
        snapshot_interval: How often to store snapshots (a :class:`~composer_swa.Schedule` interval).
            More snapshots fit untracked lengths better; 2% of the run gives 50 per profile.
        snapshot_dir: Where to write them. Default: ``posthoc_ema`` in the Trainer's ``save_folder``.
        offload: Keep the averages on the CPU.

    Raises:
        ValueError: A ``σ_rel`` outside ``(0, 0.3003]``, or (at FIT_START) no folder to write to.

    Example:
        >>> import tempfile, torch
        >>> from composer_swa.integrations import AlgorithmRunner
        >>> model = torch.nn.Linear(2, 1)
        >>> posthoc = PostHocEMA(snapshot_interval="2ba", snapshot_dir=tempfile.mkdtemp())
        >>> runner = AlgorithmRunner([posthoc], model, torch.optim.SGD(model.parameters(), lr=0.1), [0] * 5,
        ...                          max_duration="5ba", loggers=[])
        >>> runner.fit_start()
        >>> for _ in range(5):
        ...     runner.batch_start()
        ...     runner.batch_end()
        >>> runner.fit_end()
        >>> [(entry.sigma_rel, entry.step) for entry in posthoc.snapshots][-2:]  # the last batch, at FIT_END
        [(0.05, 5), (0.1, 5)]
    """

    events: ClassVar[frozenset[Event]] = frozenset({Event.FIT_START, Event.BATCH_END, Event.EPOCH_END, Event.FIT_END})
    stored_arguments: ClassVar[tuple[str, ...]] = ("sigma_rels", "snapshot_interval", "snapshot_dir", "offload")

    def __init__(
        self,
        sigma_rels: Sequence[float] = (0.05, 0.10),
        snapshot_interval: Time | str | int = "0.02dur",
        snapshot_dir: str | Path | None = None,
        offload: bool = False,
    ) -> None:
        rels = tuple(sigma_rels)
        if not rels or not all(is_number(s) and 0 < s <= MAX_SIGMA_REL for s in rels) or len(set(rels)) != len(rels):
            raise ValueError(f"sigma_rels must be distinct numbers in (0, {MAX_SIGMA_REL:.4f}], got {sigma_rels!r}")
        self.sigma_rels = tuple(float(s) for s in rels)
        self.gammas = tuple(sigma_rel_to_gamma(s) for s in self.sigma_rels)
        self.schedule = Schedule(snapshot_interval, argument="snapshot_interval")
        self.snapshot_dir = None if snapshot_dir is None else str(snapshot_dir)
        self.offload = check_flag(offload, "offload")
        self.averages: list[ModelAverage] = []
        self.last_step = 0  # the batch count of the last update; 0 before the first
        self.snapshots: list[SnapshotEntry] = []
        self.folder: Path | None = None
        self._resolved: ResolvedSchedule | None = None
        self._pending: list[dict[str, torch.Tensor]] | None = None
        self._saved_folder: str | None = None

    @property
    def snapshot_interval(self) -> Time:
        return self.schedule.interval

    def locked_arguments(self) -> dict[str, str]:
        if self.last_step == 0:
            return {}
        return {"sigma_rels": f"the saved averages track the checkpoint's profiles, updated through step {self.last_step}"}

    def match(self, event: Event, state: State) -> bool:
        if event is Event.EPOCH_END:
            return self._resolved is not None and self._resolved.fires(state.timestamp, at_epoch_end=True)
        if event is Event.FIT_END:
            return self.last_step > 0 and all(entry.step != self.last_step for entry in self.snapshots)
        return True

    def apply(self, event: Event, state: State, logger: Logger) -> None:
        if event is Event.FIT_START:
            self._start(state, logger)
        elif event is Event.BATCH_END:
            self._update(state.timestamp.batch_count, state, logger)
            assert self._resolved is not None
            if self._resolved.fires(state.timestamp, at_epoch_end=False):
                self._write_snapshots(state)
        else:  # EPOCH_END on the schedule, or FIT_END after a batch that was not
            self._write_snapshots(state)

    def _start(self, state: State, logger: Logger) -> None:
        self._resolved = self.schedule.resolve(state.resolver)
        if not self.averages:  # a second fit() keeps its averages
            device = "cpu" if self.offload else None
            self.averages = [ModelAverage(state.model, device=device) for _ in self.sigma_rels]
        if self._pending is not None:
            for average, saved in zip(self.averages, self._pending):
                average.load_state_dict(saved)
            self._pending = None
        self.folder = self._choose_folder(state)
        if state.rank == 0:
            self._reconcile_folder(state, logger)

    def _choose_folder(self, state: State) -> Path:
        if self.snapshot_dir is not None:
            folder = Path(self.snapshot_dir)
        else:
            if state.save_folder is None:
                raise ValueError(
                    "PostHocEMA needs a folder for its snapshots: pass snapshot_dir=..., or give the Trainer a save_folder "
                    f"(snapshots then go to save_folder/{DEFAULT_SUBFOLDER})"
                )
            folder = state.save_folder / DEFAULT_SUBFOLDER
        if self._saved_folder is not None and Path(self._saved_folder).resolve() != folder.resolve():
            raise ValueError(
                f"the checkpoint's PostHocEMA wrote its snapshots to {self._saved_folder!r}, this run would write to "
                f"{str(folder)!r}; a resumed run appends to the same snapshot set, so give snapshot_dir={self._saved_folder!r}"
            )
        return folder

    def _reconcile_folder(self, state: State, logger: Logger) -> None:
        """Refuses another run's snapshots; deletes those a failed attempt of this run wrote past the checkpoint."""
        assert self.folder is not None
        on_disk = read_index(self.folder) if (self.folder / INDEX_NAME).exists() else []
        ours = set(self.snapshots)
        foreign = [entry for entry in on_disk if entry not in ours]
        if foreign and (self.last_step == 0 or any(entry.step <= self.last_step for entry in foreign)):
            raise ValueError(
                f"{str(self.folder)!r} already holds post-hoc EMA snapshots of another run ({foreign[0].file}, ...); "
                "give PostHocEMA another snapshot_dir, or remove that folder"
            )
        for entry in foreign:
            (self.folder / entry.file).unlink(missing_ok=True)
        if foreign:
            logger.log_message(
                f"PostHocEMA: removed {len(foreign)} snapshot(s) an earlier attempt wrote after step {self.last_step}, "
                "where this run resumes; it writes them again",
                step=state.timestamp.batch_count,
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        write_index(self.folder, self.snapshots)

    def _update(self, step: int, state: State, logger: Logger) -> None:
        if self.last_step == 0:
            for average in self.averages:
                average.copy_from_model()
            if step != 1:
                logger.log_message(
                    f"PostHocEMA: averaging starts at step {step}, not 1: the weights before it count as equal to this step's",
                    step=step,
                )
        else:
            for average, gamma in zip(self.averages, self.gammas):
                average.interpolate(1.0 - decay(step, gamma))
        self.last_step = step

    def _write_snapshots(self, state: State) -> None:
        """One file per profile at ``last_step`` (every process gathers, process 0 writes), then the index."""
        assert self.folder is not None
        for sigma_rel, gamma, average in zip(self.sigma_rels, self.gammas, self.averages):
            tensors = average.full_state_dict()  # a collective under FSDP2
            entry = SnapshotEntry(snapshot_name(sigma_rel, self.last_step), self.last_step, gamma, sigma_rel)
            if state.rank == 0:
                metadata = {"format": "pt", "producer": "composer_swa PostHocEMA"} | {
                    key: str(value) for key, value in asdict(entry).items() if key != "file"
                }
                write_stream(
                    [_SnapshotTensor(name, tensor) for name, tensor in tensors.items()], self.folder / entry.file, metadata
                )
            self.snapshots = [e for e in self.snapshots if e.file != entry.file] + [entry]
        if state.rank == 0:
            write_index(self.folder, self.snapshots)

    def exported_weights(self) -> dict[str, dict[str, torch.Tensor] | None]:
        """Each tracked profile's EMA now, as ``sigma_rel<σ>`` (the final table and ``final/`` name them so)."""
        if not self.averages or self.last_step == 0:
            return {}
        return {
            f"sigma_rel{sigma_rel:g}": average.full_state_dict() for sigma_rel, average in zip(self.sigma_rels, self.averages)
        }

    def summary(self) -> dict[str, Any]:
        return {
            "sigma_rels": list(self.sigma_rels),
            "gammas": list(self.gammas),
            "last_step": self.last_step,
            "n_snapshots": len(self.snapshots),
            "snapshot_dir": None if self.folder is None else str(self.folder),
        }

    def state_dict(self) -> dict[str, Any]:
        if self.averages and self.last_step > 0:
            averages: list[dict[str, torch.Tensor]] | None = [average.full_state_dict() for average in self.averages]
        else:
            averages = self._pending
        return {
            "last_step": self.last_step,
            "averages": averages,
            "snapshots": [asdict(entry) for entry in self.snapshots],
            "folder": None if self.folder is None else str(self.folder),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.last_step = int(state["last_step"])
        self.snapshots = [SnapshotEntry(**entry) for entry in state["snapshots"]]
        self._saved_folder = state["folder"]
        saved = state["averages"]
        if saved is not None and len(saved) != len(self.sigma_rels):
            raise ValueError(f"the checkpoint holds {len(saved)} post-hoc EMAs, this PostHocEMA tracks {len(self.sigma_rels)}")
        if saved is not None and self.averages:
            for average, tensors in zip(self.averages, saved):
                average.load_state_dict(tensors)
        else:
            self._pending = saved  # the averages are built at FIT_START


_DTYPE_NAMES = {attribute: name for name, (attribute, _) in DTYPES.items()}


@dataclass(frozen=True)
class _SnapshotTensor:
    """One tensor of a snapshot as :func:`~composer_swa.safetensors_format.write_stream` takes it: CPU slices,
    so writing never holds more than one slice beside the averages."""

    name: str
    tensor: torch.Tensor

    @property
    def dtype_name(self) -> str:
        return _DTYPE_NAMES[str(self.tensor.dtype).removeprefix("torch.")]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.tensor.shape)

    @property
    def nbytes(self) -> int:
        return self.tensor.numel() * self.tensor.element_size()

    def byte_chunks(self) -> Iterator[bytes]:
        flat = self.tensor.detach().reshape(-1)
        for start, stop in slices(flat.numel()):
            yield flat[start:stop].cpu().view(torch.uint8).numpy().tobytes()
