"""When an SMS may go out: quiet hours (no texts at night, local time) and the backoff between retries.

Pure: times come in as arguments, nothing reads the clock.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo


@dataclass(frozen=True)
class QuietHours:
    """A daily window in local time during which no SMS is sent; ``start > end`` wraps past midnight."""

    start: time | None = None
    end: time | None = None

    @classmethod
    def parse(cls, spec: str) -> QuietHours:
        """``"21:00-08:00"``; ``""`` means no quiet hours. Raises ValueError naming what is wrong."""
        spec = spec.strip()
        if not spec:
            return cls()
        try:
            a, b = (part.strip() for part in spec.split("-"))
            start, end = time.fromisoformat(a), time.fromisoformat(b)
        except ValueError:
            raise ValueError(f"quiet hours must look like 21:00-08:00, got {spec!r}") from None
        if start == end:
            raise ValueError(f"quiet hours start and end are the same: {spec!r}")
        return cls(start, end)

    def contains(self, at: datetime, tz: tzinfo) -> bool:
        if self.start is None or self.end is None:
            return False
        t = at.astimezone(tz).time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def ends_after(self, at: datetime, tz: tzinfo) -> datetime | None:
        """The first moment after ``at`` when sending is allowed again, or None when ``at`` is not quiet."""
        if not self.contains(at, tz) or self.end is None:
            return None
        local = at.astimezone(tz)
        end = datetime.combine(local.date(), self.end, tz)
        if end <= local:
            end = datetime.combine(local.date() + timedelta(days=1), self.end, tz)
        return end


def backoff_seconds(failures: int, minimum: float, maximum: float) -> float:
    """Seconds to wait after the ``failures``-th failure in a row: doubling from ``minimum`` up to ``maximum``."""
    if failures <= 0:
        return 0.0
    return float(min(maximum, minimum * 2 ** min(failures - 1, 30)))
