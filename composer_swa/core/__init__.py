"""Composer's ``composer.core`` names, where a ported script imports them: the event system, the State and Time.

Example:
    >>> from composer_swa.core import Event, Time
    >>> Event.BATCH_END.value, Time.from_timestring("2ep")
    ('batch_end', Time(2, 'ep'))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from composer_swa._lazy import lazy_attributes

if TYPE_CHECKING:
    from composer_swa.events import Algorithm, Callback, Engine, Event
    from composer_swa.state import State
    from composer_swa.time import Time, TimeUnit
    from composer_swa.timestamp import Timestamp

__all__ = ["Algorithm", "Callback", "Engine", "Event", "State", "Time", "TimeUnit", "Timestamp"]

__getattr__, __dir__ = lazy_attributes(
    __name__,
    {
        **dict.fromkeys(("Algorithm", "Callback", "Engine", "Event"), "composer_swa.events"),
        "State": "composer_swa.state",
        **dict.fromkeys(("Time", "TimeUnit"), "composer_swa.time"),
        "Timestamp": "composer_swa.timestamp",
    },
)
