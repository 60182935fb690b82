"""Which wrapper prefix a file's keys carry: only one on every key, and only where the target lacks it."""

from __future__ import annotations

import pytest

from composer_swa.checkpoint.prefixes import wrapper_prefix


@pytest.mark.parametrize(
    ("names", "target", "expected"),
    [
        (["module.a", "module.b"], ["a", "b"], "module."),
        (["module._orig_mod.a"], ["a"], "module._orig_mod."),
        (["module.module.a"], ["module.a"], "module."),  # DDP around a model whose child is named module
        (["module.weight", "weight"], ["module.weight", "weight"], ""),  # not on every key
        (["module.weight", "module.bias"], ["module.weight", "module.bias"], ""),  # the model's own child
        (["module.a"], None, ""),  # no target: a lone module. may be the model's own child
        (["_orig_mod.a"], None, "_orig_mod."),  # only torch.compile names a child _orig_mod
        (["a", "b"], ["x"], ""),
    ],
)
def test_wrapper_prefix(names: list[str], target: list[str] | None, expected: str) -> None:
    assert wrapper_prefix(names, target) == expected
