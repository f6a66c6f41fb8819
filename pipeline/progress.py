"""Progress display for long runs: numbered stages with timings, indented detail lines."""

from __future__ import annotations

import contextlib
import sys
import time
from typing import IO, Iterator


class Progress:
    def __init__(self, stage_names: list[str], *, stream: IO[str] | None = None, prefix: str = ""):
        self.stage_names = stage_names
        self.stream = stream or sys.stdout
        self.prefix = prefix
        self.seconds: dict[str, float] = {}

    def __call__(self, text: str) -> None:
        print(f"{self.prefix}{text}", file=self.stream, flush=True)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        number = self.stage_names.index(name) + 1 if name in self.stage_names else "?"
        self(f"[{number}/{len(self.stage_names)}] {name} ...")
        started = time.monotonic()
        yield
        self.seconds[name] = round(time.monotonic() - started, 3)
        self(f"[{number}/{len(self.stage_names)}] {name} done in {self.seconds[name]:.1f} s")


class Silent(Progress):
    def __init__(self, stage_names: list[str] | None = None):
        super().__init__(stage_names or [])

    def __call__(self, text: str) -> None:
        pass
