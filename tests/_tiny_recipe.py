"""A tiny long-tailed image set and recipes on it, small enough to train in a second on CPU.

4 classes of 8x8 images (20/12/7/5 training images at imbalance ratio 4; 3 test images per
class), batch 8: 5 steps per epoch of the real ResNet-32.
"""

from __future__ import annotations

from pathlib import Path

from _datafakes import write_npz

TRAIN = """[train]
epochs = {epochs}
batch_size = 8
warmup_epochs = 1
milestones = [{last}]
gamma = 0.1
"""


def tiny_npz(folder: Path) -> Path:
    path = folder / "tiny.npz"
    if not path.exists():
        write_npz(path, num_classes=4, per_class=20, test_per_class=3, size=8)
    return path


def tiny_recipe(folder: Path, name: str = "tiny-ce", loss: str = 'name = "ce"', epochs: int = 3,
                extra: str = "", train: str | None = None) -> Path:
    """Write ``folder/name.toml`` training ``loss`` on the tiny set; returns its path."""
    npz = tiny_npz(folder)
    text = (f'description = "tiny test recipe"\n[data]\nsource = "npz:{npz}"\nimbalance_ratio = 4\n\n'
            f"[loss]\n{loss}\n\n{TRAIN.format(epochs=epochs, last=epochs) if train is None else train}\n{extra}\n")
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path
