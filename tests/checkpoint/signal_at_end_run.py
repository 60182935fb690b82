"""A run that receives SIGTERM after its last batch: at FIT_END, or in the middle of the export of ``final/``.

Run as ``python -m tests.checkpoint.signal_at_end_run FOLDER fit_end|export``.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

from composer_swa import Callback, State
from composer_swa.checkpoint import export as export_module
from composer_swa.loggers import Logger
from tests.checkpoint.resume_run import build


class SignalAtFitEnd(Callback):
    def fit_end(self, state: State, logger: Logger) -> None:
        os.kill(os.getpid(), signal.SIGTERM)


def main() -> None:
    folder, when = Path(sys.argv[1]), sys.argv[2]
    callbacks: list[Callback] = []
    if when == "fit_end":
        callbacks.append(SignalAtFitEnd())
    else:
        save_file = export_module.save_file

        signalled: list[bool] = []

        def signalled_mid_export(*args: Any, **kwargs: Any) -> None:
            if not signalled:  # once, as the first file of final/ is being written (a second SIGTERM forces exit)
                signalled.append(True)
                os.kill(os.getpid(), signal.SIGTERM)
            save_file(*args, **kwargs)

        export_module.save_file = signalled_mid_export  # type: ignore[assignment]
    build(folder, "ema", callbacks=callbacks).fit()


if __name__ == "__main__":
    main()
