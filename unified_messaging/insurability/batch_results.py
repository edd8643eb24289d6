"""What a batch run reports: one ``FileResult`` per input file, gathered in a ``RunSummary``."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class FileResult:
    input: str
    status: str  # "done" | "rejected" | "stopped" | "busy"
    lines: int = 0
    ok: int = 0
    errors: int = 0
    resumed_at: int = 0  # lines found already answered when the run started
    output: Path | None = None
    moved_to: Path | None = None
    reason: str = ""

    def describe(self) -> str:
        if self.status == "done":
            resumed = f", continued after line {self.resumed_at}" if self.resumed_at else ""
            return (f"{self.input}: {self.lines} lines, {self.ok} OK, {self.errors} ERROR{resumed} -> "
                    f"{self.output}; input archived to {self.moved_to}")
        if self.status == "rejected":
            return f"{self.input}: not processed, moved to {self.moved_to}: {self.reason}"
        if self.status == "busy":
            return "skipped: another run of this job is in progress"
        return f"{self.input}: STOPPED after {self.ok + self.errors} of {self.lines} lines: {self.reason}"


@dataclass
class RunSummary:
    job: str
    files: list[FileResult] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(f.status == "done" for f in self.files)

    def describe(self) -> str:
        if not self.files:
            return f"{self.job}: no input file to process."
        lines = sum(f.lines for f in self.files if f.status == "done")
        ok = sum(f.ok for f in self.files if f.status == "done")
        errors = sum(f.errors for f in self.files if f.status == "done")
        counts = {s: sum(1 for f in self.files if f.status == s) for s in ("done", "rejected", "stopped", "busy")}
        head = (f"{self.job}: {counts['done']} file(s) done ({lines} lines: {ok} OK, {errors} ERROR), "
                f"{counts['rejected']} rejected, {counts['stopped']} stopped, {counts['busy']} busy")
        return "\n".join([head, *("  " + f.describe() for f in self.files)])
