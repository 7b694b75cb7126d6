"""Training logs a run of days needs: a CSV file (always) and TensorBoard scalars (optional).

`<name>.log.csv` has one row per optimizer step: step, loss, grad_norm (before clipping),
learning rate, seconds per step, and the validation loss on the steps it was measured. A
resumed run keeps the rows up to the resume step and continues the file.
"""
from __future__ import annotations

import csv
import logging
import os
from typing import Optional

logger = logging.getLogger(__name__)

COLUMNS = ("step", "loss", "grad_norm", "lr", "seconds", "val_loss")


def log_paths(adapter_path: str) -> tuple[str, str]:
    """(CSV log, TensorBoard folder) beside the adapter file."""
    stem = adapter_path[: -len(".safetensors")] if adapter_path.endswith(".safetensors") else adapter_path
    return stem + ".log.csv", stem + "_tensorboard"


class TrainLog:
    def __init__(self, adapter_path: str, start_step: int, tensorboard: bool, enabled: bool = True):
        self.enabled = enabled
        self.csv_path, self.tensorboard_dir = log_paths(adapter_path)
        self.writer = None
        if not enabled:
            return
        rows = self._kept_rows(start_step)
        with open(self.csv_path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(self.tensorboard_dir, purge_step=start_step + 1 if start_step else None)

    def _kept_rows(self, start_step: int) -> list[dict]:
        if not start_step or not os.path.isfile(self.csv_path):
            return []
        with open(self.csv_path, newline="", encoding="utf-8") as handle:
            return [row for row in csv.DictReader(handle) if row.get("step", "").isdigit()
                    and int(row["step"]) <= start_step]

    def write(self, step: int, loss: float, grad_norm: float, lr: float, seconds: float,
              val_loss: Optional[float] = None) -> None:
        if not self.enabled:
            return
        row = {"step": step, "loss": f"{loss:.6g}", "grad_norm": f"{grad_norm:.6g}", "lr": f"{lr:.6g}",
               "seconds": f"{seconds:.4g}", "val_loss": "" if val_loss is None else f"{val_loss:.6g}"}
        with open(self.csv_path, "a", newline="", encoding="utf-8") as handle:
            csv.DictWriter(handle, COLUMNS).writerow(row)
        if self.writer is not None:
            for name, value in (("train/loss", loss), ("train/grad_norm", grad_norm), ("train/lr", lr),
                                ("train/seconds_per_step", seconds), ("val/loss", val_loss)):
                if value is not None:
                    self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None
