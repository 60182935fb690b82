"""A run's name, as Composer picks it: the Trainer's ``run_name``, else ``$COMPOSER_RUN_NAME`` or ``$RUN_NAME``,
else a generated ``"<unix time>-<adjective>-<animal>"`` that sorts newest last, the same on every process."""

from __future__ import annotations

import os
import random
import time

from composer_swa.distributed.process_group import all_gather_objects

__all__: list[str] = []

# Composer draws two words from the `coolname` package; a short list of our own serves the same purpose.
_ADJECTIVES = (
    "amber", "brave", "calm", "clever", "crisp", "daring", "eager", "fancy", "gentle", "golden", "happy", "jolly",
    "keen", "lively", "lucky", "mellow", "nimble", "polite", "quiet", "rapid", "silver", "steady", "swift", "witty",
)  # fmt: skip
_ANIMALS = (
    "badger", "beaver", "crane", "dolphin", "falcon", "ferret", "gecko", "heron", "ibis", "jackal", "koala", "lemur",
    "lynx", "marten", "otter", "panda", "puffin", "quokka", "raven", "salmon", "tapir", "walrus", "wombat", "yak",
)  # fmt: skip


def generate_run_name() -> str:
    """A fresh name: the time now, for sorting, and two random words (drawn from the OS, not the seeded RNGs).

    Example:
        >>> stamp, adjective, animal = generate_run_name().split("-")
        >>> stamp.isdigit() and adjective in _ADJECTIVES and animal in _ANIMALS
        True
    """
    draw = random.Random(os.urandom(16))  # a seeded run must not change its draws, nor reuse a name
    return f"{int(time.time())}-{draw.choice(_ADJECTIVES)}-{draw.choice(_ANIMALS)}"


def resolve_run_name(run_name: str | None) -> str:
    """``run_name`` if given, else the environment's, else process 0's generated name (on every process).

    Raises:
        ValueError: ``run_name`` is empty or holds a path separator.

    Example:
        >>> resolve_run_name("baseline")
        'baseline'
    """
    if run_name is None:
        run_name = os.environ.get("COMPOSER_RUN_NAME") or os.environ.get("RUN_NAME")
    if run_name is None:
        return str(all_gather_objects(generate_run_name())[0])
    if not isinstance(run_name, str) or not run_name or "/" in run_name or os.sep in run_name:
        raise ValueError(f"run_name must be a non-empty string without '/', got {run_name!r}")
    return run_name
