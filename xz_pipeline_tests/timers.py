"""Timers for the clients under test: waits recorded (and the emulator's clock advanced) instead of slept."""

from __future__ import annotations

from xz_pipeline.sandbox.clock import Clock, ManualClock


class ManualTimer:
    """The client's timer in tests: sleeping advances the emulator's manual clock instead of waiting."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.clock.monotonic()

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if seconds > 0:
            self.clock.advance(seconds)


class NoWaitTimer:
    """Real clock, but retries and throttling waits are recorded instead of slept (fault tests)."""

    def __init__(self) -> None:
        self.slept: list[float] = []
        self._clock = Clock()

    def monotonic(self) -> float:
        return self._clock.monotonic()

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
