"""``--weights-from FILE``: a list of weights, or layer-wise rules, read without importing torch."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from composer_swa.merging.methods.registry import OptionError

if TYPE_CHECKING:
    from composer_swa.merging.methods.registry import MergeInputs
    from composer_swa.merging.recipes import TensorWeights

__all__: list[str] = []


def read_weights_file(path: Path) -> Any:
    """The YAML/JSON of ``--weights-from``, read within the config reader's bounds.

    Raises:
        OptionError: The file is not readable YAML/JSON.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "weights.yaml"
        >>> _ = path.write_text("[3, 1, 1]")
        >>> read_weights_file(path)
        [3, 1, 1]
    """
    import yaml

    from composer_swa.config.yaml_reader import read_yaml_text

    try:
        return read_yaml_text(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, ValueError, UnicodeDecodeError) as error:
        raise OptionError(f"--weights-from {str(path)!r} is not readable YAML/JSON: {error}") from None


def layerwise_from_file(spec_path: Path | None, inputs: MergeInputs, default: list[float]) -> TensorWeights:
    """The per-tensor weights of ``--method layerwise``: ``default``, then ``rules`` by name pattern and ``gradients``.

    Raises:
        OptionError: The file is missing, not YAML/JSON, or its rules lack a pattern or weights.
    """
    from composer_swa.merging.recipes import layerwise_weights

    if spec_path is None:
        raise OptionError("--method layerwise needs --weights-from FILE with 'rules' and/or 'gradients'")
    spec = read_weights_file(spec_path) or {}
    if not isinstance(spec, dict):
        raise OptionError(f"{spec_path}: expected a mapping with 'default', 'rules' and/or 'gradients'")
    names = inputs.tensor_names()
    try:
        rules = [(str(rule["pattern"]), [float(w) for w in rule["weights"]]) for rule in spec.get("rules", [])]
    except (KeyError, TypeError, ValueError):
        raise OptionError(
            f"{spec_path}: each of 'rules' needs a 'pattern' (a regular expression) and 'weights' (one number per "
            f"input), got {spec.get('rules')!r}"
        ) from None
    return layerwise_weights(names, inputs.count, spec.get("default", default), rules, spec.get("gradients"))
