"""torchmetrics (seconds to import: it loads scipy, matplotlib, transformers) loads only when a run evaluates."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def test_models_model_calls_and_the_statistics_pass_do_not_import_torchmetrics() -> None:
    code = (
        "import json, sys\n"
        "import composer_swa.models, composer_swa.model_calls, composer_swa.averaging.bn, composer_swa.integrations.runner\n"
        "from composer_swa.models import ComposerModel, MLP\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ.copy())
    loaded = set(json.loads(result.stdout))

    assert "composer_swa.models.base" in loaded  # the test imports what it names
    assert not {name for name in loaded if name.split(".")[0] in ("torchmetrics", "transformers")}
