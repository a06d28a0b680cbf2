"""Profile 'asis': a source that is already long-tailed is used whole, and its real ratio recorded."""

from __future__ import annotations

import numpy as np
import pytest
from _datafakes import write_folder

from ltrank.data import DatasetConfig, load_longtailed
from ltrank.errors import LtrankError

COUNTS = {"cat": (9, 2), "dog": (5, 2), "eel": (3, 2)}  # (train, test): a small natural long tail


def test_asis_keeps_every_training_image_and_measures_the_ratio(tmp_path):
    write_folder(tmp_path / "pets", COUNTS)
    data = load_longtailed(DatasetConfig(source=f"folder:{tmp_path / 'pets'}", profile="asis"))
    assert data.class_counts == [9, 5, 3]
    assert data.manifest.imbalance_ratio == pytest.approx(3.0)
    assert data.manifest.selection_rule == "keep-all"
    for c, rows in enumerate(data.manifest.selected_indices):
        assert rows == sorted(rows) and len(rows) == data.class_counts[c]
    assert sorted(np.bincount(data.train_labels.numpy()).tolist()) == [3, 5, 9]


def test_the_same_folder_with_a_profile_cannot_keep_the_tail(tmp_path):
    """Why 'asis' exists: the exp profile rebuilds from the largest class and runs out of images."""
    write_folder(tmp_path / "pets", {"cat": (9, 2), "dog": (8, 2), "eel": (1, 2)})
    with pytest.raises(LtrankError, match="needs .* training images but the source holds"):
        load_longtailed(DatasetConfig(source=f"folder:{tmp_path / 'pets'}", imbalance_ratio=3))


def test_asis_run_record_and_compare_label(tmp_path):
    from ltrank.engine.run import data_info
    from ltrank.recipe import resolve

    write_folder(tmp_path / "pets", COUNTS)
    raw = {"description": "asis", "data": {"source": f"folder:{tmp_path / 'pets'}", "profile": "asis"},
           "loss": {"name": "ce"}}
    recipe = resolve(raw)
    data = load_longtailed(recipe.data)
    info = data_info(recipe.data, data)
    assert info.imbalance_ratio == pytest.approx(3.0) and info.profile == "asis"
    assert info.label().endswith("IR3 asis")
