"""Run logging: a JSON-lines file always, TensorBoard when it is installed."""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import torch

METRICS = "metrics.jsonl"


def read_metrics(run_dir: Path) -> list[dict]:
    """The rows of the run's log, `metrics.jsonl` or `metrics.jsonl.xz`: logs kept in the
    repository are xz-compressed, which makes them about a tenth of the size."""
    plain, packed = run_dir / METRICS, run_dir / (METRICS + ".xz")
    if plain.is_file():
        text = plain.read_text()
    elif packed.is_file():
        text = lzma.decompress(packed.read_bytes()).decode()
    else:
        raise FileNotFoundError(f"{run_dir} has no {METRICS} nor {METRICS}.xz")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class RunLogger:
    """Writes `metrics.jsonl` in the run folder and mirrors it to TensorBoard if available."""

    def __init__(self, out_dir: Path, enabled: bool = True, start_step: int = 0) -> None:
        """Appends to an existing log after dropping its rows past `start_step`: those came
        after the checkpoint a resumed run continues from, and will be logged again."""
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / METRICS
        if path.exists():
            rows = path.read_text().splitlines()
            kept = [row for row in rows if row.strip() and json.loads(row)["step"] <= start_step]
            if len(kept) != len(rows):
                path.write_text("".join(row + "\n" for row in kept))
        self.jsonl = open(path, "a", buffering=1)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # TensorBoard is optional (the `train` extra)
            return
        self.writer = SummaryWriter(str(out_dir / "tensorboard"))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        self.jsonl.write(json.dumps({"step": step, **values}) + "\n")
        if self.writer:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)

    def images(self, step: int, tag: str, originals: torch.Tensor, reconstructions: torch.Tensor) -> None:
        """Originals over reconstructions as one grid (TensorBoard only)."""
        if not (self.enabled and self.writer):
            return
        grid = torch.cat([torch.cat(list(originals), dim=2), torch.cat(list(reconstructions), dim=2)], dim=1)
        self.writer.add_image(tag, grid.clamp(0, 1).cpu(), step)

    def close(self) -> None:
        if self.enabled:
            self.jsonl.close()
            if self.writer:
                self.writer.close()
