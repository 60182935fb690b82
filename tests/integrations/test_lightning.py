"""LightningCallback inside a real lightning.Trainer, against our Trainer on the same run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

pl = pytest.importorskip("lightning.pytorch")

# Lightning's own advice, not about what is tested here.
pytestmark = [
    pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`"),
    pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`"),
    pytest.mark.filterwarnings(r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated"),
]

from composer_swa import EMA, SWA, SWATS  # noqa: E402
from composer_swa.integrations import LightningCallback  # noqa: E402

from .reference import (  # noqa: E402
    EPOCHS,
    TinyNet,
    assert_batch_norm_recomputed,
    assert_same_weights,
    initial_model,
    optimizer_and_schedule,
    our_trainer_run,
    swa,
    tuple_loader,
)


class TinyModule(pl.LightningModule):  # type: ignore[misc]
    def __init__(self, net: TinyNet) -> None:
        super().__init__()
        self.net = net
        self.eval_weights: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.eval_weights.append(self.net.body[0].weight.detach().clone())
        self.log("val_loss", torch.nn.functional.cross_entropy(self(batch[0]), batch[1]))

    def configure_optimizers(self) -> Any:
        optimizer, schedule = optimizer_and_schedule(self.net)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def lightning_run(
    algorithms: list[Any],
    extra_callbacks: Sequence[Any] = (),
    ckpt_path: str | None = None,
    batch_size: int = 16,
    **arguments: Any,
) -> Any:
    """Trains in lightning.Trainer; returns the trainer (``trainer.lightning_module``, ``trainer.callbacks``)."""
    module = TinyModule(initial_model())
    settings: dict[str, Any] = {
        "max_epochs": EPOCHS,
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        **arguments,
    }
    trainer = pl.Trainer(callbacks=[LightningCallback(algorithms, loggers=[]), *extra_callbacks], **settings)
    validation = tuple_loader() if "val_check_interval" in arguments or "check_val_every_n_epoch" in arguments else None
    trainer.fit(module, train_dataloaders=tuple_loader(batch_size), val_dataloaders=validation, ckpt_path=ckpt_path)
    return trainer


def test_swa_ends_with_our_trainers_average_and_fresh_batch_norm_statistics() -> None:
    reference_model, (reference_swa,) = our_trainer_run()
    algorithm = swa()
    module = lightning_run([algorithm]).lightning_module

    assert algorithm.n_averaged == reference_swa.n_averaged == 6
    assert_same_weights(module.net, reference_model)
    averaged = {name.removeprefix("net."): tensor for name, tensor in (algorithm.averaged_weights() or {}).items()}
    assert_same_weights(averaged, reference_swa.averaged_weights() or {})  # averaged over the LightningModule
    assert_batch_norm_recomputed(module.net)


def test_an_early_swa_end_swaps_mid_run_and_training_goes_on_as_in_our_trainer() -> None:
    def early_swa() -> list[Any]:
        return [SWA(swa_start="0.3dur", swa_end="0.6dur", update_interval="2ba")]

    reference_model, (reference_swa,) = our_trainer_run(early_swa)
    algorithms = early_swa()
    module = lightning_run(algorithms).lightning_module
    assert algorithms[0].n_averaged == reference_swa.n_averaged == 4  # steps 7, 9, 11, 13
    assert_same_weights(module.net, reference_model)


def test_accumulated_micro_batches_count_as_one_optimizer_step() -> None:
    """Batches of 8, two per step: 13 micro-batches make 7 steps per epoch, as batches of 16 do."""
    algorithm = swa()
    trainer = lightning_run([algorithm], batch_size=8, accumulate_grad_batches=2)
    (callback,) = [c for c in trainer.callbacks if isinstance(c, LightningCallback)]
    stamp = callback.runner.state.timestamp
    assert (stamp.batch_count, stamp.epoch_count, stamp.sample_count) == (21, 3, 300) == (trainer.global_step, 3, 300)
    assert algorithm.n_averaged == 6 and algorithm.finished  # steps 11, 13, ..., 21, swapped in at the last


def test_validation_sees_the_average_and_training_goes_on_from_the_live_weights() -> None:
    def swa_evaluating_average() -> list[Any]:
        return [SWA(swa_start="0.5dur", update_interval="2ba", eval_with_average=True)]

    reference_model, _ = our_trainer_run(swa_evaluating_average)
    (algorithm,) = algorithms = swa_evaluating_average()
    live: dict[int, torch.Tensor] = {}

    class RecordLive(pl.Callback):  # type: ignore[misc]
        def on_train_batch_end(self, trainer: Any, pl_module: TinyModule, *args: Any) -> None:
            live[trainer.global_step] = pl_module.net.body[0].weight.detach().clone()

    module = lightning_run(algorithms, [RecordLive()], val_check_interval=7, check_val_every_n_epoch=None).lightning_module

    # Validation at step 14 ran once per validation batch with the mean of the snapshots after steps 11 and 13.
    expected = (live[11] + live[13]) / 2
    torch.testing.assert_close(module.eval_weights[7], expected, rtol=1e-6, atol=1e-7)
    assert algorithm.n_averaged == 6
    assert_same_weights(module.net, reference_model)  # the swap back was exact


def test_algorithm_state_survives_a_checkpoint_and_resume(tmp_path: Path) -> None:
    """Saved by ModelCheckpoint after epoch 2 (step 14, two snapshots in), resumed by Lightning: the same end."""

    def algorithms() -> list[Any]:
        return [swa(), EMA(half_life="4ba", replace_at_fit_end=False)]

    checkpoints = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_top_k=-1, every_n_epochs=1, filename="{epoch}")
    uninterrupted = algorithms()
    lightning_run(uninterrupted, [checkpoints], enable_checkpointing=True)
    saved = torch.load(tmp_path / "epoch=1.ckpt", weights_only=True)
    (algorithm_state,) = [state for key, state in saved["callbacks"].items() if key.startswith("LightningCallback")]
    assert algorithm_state["algorithms"]["SWA"]["n_averaged"] == 2  # after steps 11 and 13

    resumed = algorithms()
    module = lightning_run(resumed, ckpt_path=str(tmp_path / "epoch=1.ckpt")).lightning_module

    assert resumed[0].n_averaged == uninterrupted[0].n_averaged == 6
    for before, after in zip(uninterrupted, resumed):
        assert_same_weights(after.averaged_weights() or {}, before.averaged_weights() or {})
    assert_batch_norm_recomputed(module.net)


def test_resuming_from_a_checkpoint_without_the_algorithms_state_is_refused(tmp_path: Path) -> None:
    checkpoints = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_top_k=-1, every_n_epochs=1, filename="{epoch}")
    module = TinyModule(initial_model())
    plain = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_progress_bar=False, callbacks=[checkpoints])
    plain.fit(module, train_dataloaders=tuple_loader())
    with pytest.raises(ValueError, match=r"resumed at step 14, but the checkpoint holds the algorithms' state none"):
        lightning_run([swa()], ckpt_path=str(tmp_path / "epoch=1.ckpt"))


class _Stream(torch.utils.data.IterableDataset[tuple[torch.Tensor, torch.Tensor]]):
    def __iter__(self) -> Any:
        return iter(tuple_loader())


@pytest.mark.parametrize(
    ("length", "interval", "streamed", "refusal"),
    [
        pytest.param({"max_steps": 20}, "1ep", True, r"cannot resolve 1ep.*lightning.Trainer's train dataloader has no length",
                     id="epoch-times-name-what-lightning-hides"),
        pytest.param({"max_epochs": -1}, None, False, r"gives the run no length \(max_steps=-1, max_epochs=-1",
                     id="a-run-without-length"),
        # Lightning estimates -1 steps here (its max_steps default): the refusal names the fix, not Time's -1 'ba'.
        pytest.param({"max_epochs": 2}, "1ba", True,
                     r"gives the run no length \(max_steps=-1, max_epochs=2, over a dataloader without length.*set max_steps",
                     id="no-length-and-no-max-steps"),
    ],
)  # fmt: skip
def test_what_lightning_hides_of_the_run_length_is_refused_naming_it(
    length: dict[str, int], interval: str | None, streamed: bool, refusal: str
) -> None:
    module = TinyModule(initial_model())
    algorithm = SWA(swa_start="0.5dur", update_interval=interval) if interval is not None else SWA()
    trainer = pl.Trainer(
        **length, accelerator="cpu", logger=False, enable_progress_bar=False, enable_checkpointing=False,
        callbacks=[LightningCallback([algorithm], loggers=[])],
    )  # fmt: skip
    loader = torch.utils.data.DataLoader(_Stream(), batch_size=None) if streamed else tuple_loader()
    with pytest.raises(ValueError, match=refusal):
        trainer.fit(module, train_dataloaders=loader)


def test_swats_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="SWATS replaces the optimizer object"):
        LightningCallback([SWATS()])


def test_resuming_with_other_algorithm_arguments_warns_or_is_refused(tmp_path: Path) -> None:
    """The arguments travel in Lightning's checkpoint too: another swa_lr is a warning, another grid an error."""
    checkpoints = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_top_k=-1, every_n_epochs=1, filename="{epoch}")
    lightning_run([swa()], [checkpoints], enable_checkpointing=True)
    checkpoint = str(tmp_path / "epoch=1.ckpt")  # two snapshots in

    with pytest.raises(ValueError, match=r"SWA: .*update_interval '2ba' → '1ba'.*resume with update_interval='2ba'"):
        lightning_run([SWA(swa_start="0.5dur", update_interval="1ba", schedule_swa_lr=True, swa_lr=0.01, anneal_steps=3)],
                      ckpt_path=checkpoint)  # fmt: skip
    other_lr = SWA(swa_start="0.5dur", update_interval="2ba", schedule_swa_lr=True, swa_lr=0.02, anneal_steps=3)
    with pytest.warns(UserWarning, match=r"SWA: this run changes arguments of the checkpoint's \(swa_lr 0.01 → 0.02\)"):
        lightning_run([other_lr], ckpt_path=checkpoint)
    assert other_lr.n_averaged == 6
