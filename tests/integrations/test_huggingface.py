"""HuggingFaceCallback inside a real transformers.Trainer, against our Trainer on the same run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from safetensors.torch import load_file
from transformers import Trainer as HFTrainer
from transformers import TrainerCallback, TrainingArguments

from composer_swa import EMA, SWA, SWATS
from composer_swa.integrations import HuggingFaceCallback
from composer_swa.integrations.huggingface import STATE_FILE_NAME
from tests.helpers import DictDataset

from .reference import (
    BATCH_SIZE,
    EPOCHS,
    TinyNet,
    assert_batch_norm_recomputed,
    assert_same_weights,
    data,
    initial_model,
    optimizer_and_schedule,
    our_trainer_run,
    swa,
)


def hf_run(
    output_dir: Path,
    algorithms: list[Any],
    resume_from_checkpoint: str | None = None,
    model: TinyNet | None = None,
    callbacks_before: Sequence[TrainerCallback] = (),
    **arguments: Any,
) -> HFTrainer:
    """Trains ``model`` (default: the reference's initial model) in transformers.Trainer with our callback last."""
    model = model if model is not None else initial_model()
    optimizer, schedule = optimizer_and_schedule(model)
    settings: dict[str, Any] = {
        "per_device_train_batch_size": BATCH_SIZE,
        "num_train_epochs": EPOCHS,
        "max_grad_norm": 0.0,  # our Trainer does not clip
        "report_to": "none",
        "use_cpu": True,
        "save_strategy": "no",
        "logging_strategy": "no",
        "train_sampling_strategy": "sequential",
        "remove_unused_columns": False,
        "disable_tqdm": True,
        **arguments,
    }
    callbacks = [*callbacks_before, HuggingFaceCallback(algorithms, loggers=[])]
    trainer = HFTrainer(
        model=model,
        args=TrainingArguments(output_dir=str(output_dir), **settings),
        train_dataset=DictDataset(*data()),
        eval_dataset=DictDataset(*data()),
        optimizers=(optimizer, schedule),
        callbacks=callbacks,
    )
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    return trainer


def test_swa_ends_with_our_trainers_average_and_fresh_batch_norm_statistics(tmp_path: Path) -> None:
    reference_model, (reference_swa,) = our_trainer_run()
    algorithm = swa()
    trainer = hf_run(tmp_path, [algorithm])

    assert algorithm.n_averaged == reference_swa.n_averaged == 6  # steps 11, 13, ..., 21 of 21
    assert_same_weights(trainer.model, reference_model)
    assert_same_weights(algorithm.averaged_weights() or {}, reference_swa.averaged_weights() or {})
    assert_batch_norm_recomputed(trainer.model)
    # Saved as transformers expects: save_model writes the averaged weights.
    trainer.save_model(str(tmp_path / "final"))
    saved = load_file(str(tmp_path / "final" / "model.safetensors"))
    assert_same_weights(saved, trainer.model)


def test_an_early_swa_end_swaps_mid_run_and_training_goes_on_as_in_our_trainer(tmp_path: Path) -> None:
    """The batch-norm pass at step 13 iterates accelerate's train dataloader inside the running epoch."""

    def early_swa() -> list[Any]:
        return [SWA(swa_start="0.3dur", swa_end="0.6dur", update_interval="2ba")]

    reference_model, (reference_swa,) = our_trainer_run(early_swa)
    algorithms = early_swa()
    trainer = hf_run(tmp_path, algorithms)
    assert algorithms[0].n_averaged == reference_swa.n_averaged == 4  # steps 7, 9, 11, 13
    assert_same_weights(trainer.model, reference_model)


def test_accumulated_micro_batches_count_as_one_optimizer_step(tmp_path: Path) -> None:
    """Batches of 8, two per step: 13 micro-batches make 7 steps per epoch, as batches of 16 do."""
    algorithm = swa()
    trainer = hf_run(tmp_path, [algorithm], per_device_train_batch_size=8, gradient_accumulation_steps=2)
    (callback,) = [c for c in trainer.callback_handler.callbacks if isinstance(c, HuggingFaceCallback)]
    stamp = callback.runner.state.timestamp
    assert (stamp.batch_count, stamp.epoch_count, stamp.sample_count) == (21, 3, 300) == (trainer.state.global_step, 3, 300)
    assert algorithm.n_averaged == 6 and algorithm.finished  # steps 11, 13, ..., 21, swapped in at the last


class _RecordsEvalWeights(TinyNet):
    """Keeps the first layer's weight each time it runs in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.eval_weights: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> Any:
        if not self.training:
            self.eval_weights.append(self.body[0].weight.detach().clone())
        return super().forward(x, labels)


class _RecordsLiveWeights(TrainerCallback):  # type: ignore[misc]
    def __init__(self) -> None:
        self.after_step: dict[int, torch.Tensor] = {}

    def on_step_end(self, args: Any, state: Any, control: Any, model: TinyNet, **kwargs: Any) -> None:
        self.after_step[state.global_step] = model.body[0].weight.detach().clone()


def test_evaluation_sees_the_average_and_training_goes_on_from_the_live_weights(tmp_path: Path) -> None:
    def swa_evaluating_average() -> list[Any]:
        return [SWA(swa_start="0.5dur", update_interval="2ba", eval_with_average=True)]

    reference_model, _ = our_trainer_run(swa_evaluating_average)
    torch.manual_seed(0)  # the reference's initial weights
    model = _RecordsEvalWeights()
    recorder = _RecordsLiveWeights()
    evaluation = {"eval_strategy": "steps", "eval_steps": 14, "per_device_eval_batch_size": 100}
    hf_run(tmp_path, swa_evaluating_average(), model=model, callbacks_before=[recorder], **evaluation)

    # Evaluated at step 14 with the mean of the snapshots after steps 11 and 13 (swa_start = ceil(0.5 * 21)).
    expected = (recorder.after_step[11] + recorder.after_step[13]) / 2
    torch.testing.assert_close(model.eval_weights[0], expected, rtol=1e-6, atol=1e-7)
    assert_same_weights(model, reference_model)  # the swap back was exact


def test_algorithm_state_survives_a_checkpoint_and_resume(tmp_path: Path) -> None:
    """Stopped at step 12 (mid-epoch, three snapshots in), resumed by transformers: the same end as without a stop."""

    def algorithms() -> list[Any]:
        return [swa(), EMA(half_life="4ba", replace_at_fit_end=False)]

    shuffled = {"train_sampling_strategy": "random", "save_strategy": "steps", "save_steps": 12, "seed": 3}
    uninterrupted = algorithms()
    hf_run(tmp_path / "whole", uninterrupted, **shuffled)
    checkpoint = tmp_path / "whole" / "checkpoint-12"
    assert (checkpoint / STATE_FILE_NAME).is_file()

    resumed = algorithms()
    trainer = hf_run(tmp_path / "whole", resumed, resume_from_checkpoint=str(checkpoint), **shuffled)

    assert resumed[0].n_averaged == uninterrupted[0].n_averaged == 6
    for before, after in zip(uninterrupted, resumed):
        assert_same_weights(after.averaged_weights() or {}, before.averaged_weights() or {})
    assert_batch_norm_recomputed(trainer.model)


def test_resuming_without_the_algorithms_state_is_refused(tmp_path: Path) -> None:
    hf_run(tmp_path, [swa()], save_strategy="steps", save_steps=12)
    (tmp_path / "checkpoint-12" / STATE_FILE_NAME).unlink()
    with pytest.raises(FileNotFoundError, match=r"resumed at step 12.*composer_swa_state\.pt.*resume_from="):
        hf_run(tmp_path, [swa()], resume_from_checkpoint=str(tmp_path / "checkpoint-12"))


class _Stream(torch.utils.data.IterableDataset[dict[str, torch.Tensor]]):
    def __iter__(self) -> Any:
        return iter(DictDataset(*data()))


def test_epoch_times_on_a_dataset_without_length_name_what_transformers_hides(tmp_path: Path) -> None:
    model = initial_model()
    trainer = HFTrainer(
        model=model,
        args=TrainingArguments(output_dir=str(tmp_path), max_steps=20, use_cpu=True, report_to="none", disable_tqdm=True),
        train_dataset=_Stream(),
        callbacks=[HuggingFaceCallback([SWA(swa_start="0.5dur", update_interval="1ep")], loggers=[])],
    )
    with pytest.raises(ValueError, match=r"cannot resolve 1ep.*IterableDataset.*'ba' or 'dur'"):
        trainer.train()


def test_load_best_model_at_end_would_discard_the_average(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="load_best_model_at_end=True would replace the final weights SWA produces"):
        hf_run(tmp_path, [swa()], load_best_model_at_end=True, eval_strategy="epoch", save_strategy="epoch")


def test_swats_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="SWATS replaces the optimizer object"):
        HuggingFaceCallback([SWATS()])
