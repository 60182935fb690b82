"""GradientClipping in the framework adapters: Lightning drives it like its own clipping; transformers refuses it."""

from __future__ import annotations

import pytest
import torch

from composer_swa import GradientClipping

from .reference import assert_same_weights

pytestmark = [
    pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`"),
    pytest.mark.filterwarnings(r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated"),
]


def test_lightning_clips_as_its_own_gradient_clip_val_does() -> None:
    pytest.importorskip("lightning.pytorch")
    from .test_lightning import lightning_run

    ours = lightning_run([GradientClipping("value", 0.01)], max_steps=3).lightning_module.net
    theirs = lightning_run([], max_steps=3, gradient_clip_val=0.01, gradient_clip_algorithm="value").lightning_module.net
    unclipped = lightning_run([], max_steps=3).lightning_module.net
    assert_same_weights(ours, theirs)
    assert not torch.allclose(ours.body[0].weight, unclipped.body[0].weight)


def test_transformers_refuses_it_and_names_max_grad_norm() -> None:
    pytest.importorskip("transformers")
    from composer_swa.integrations import HuggingFaceCallback

    with pytest.raises(ValueError, match=r"GradientClipping acts on the gradients .* TrainingArguments\(max_grad_norm=...\)"):
        HuggingFaceCallback([GradientClipping("norm", 1.0)])
