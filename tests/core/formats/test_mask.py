"""The mask file: refusals with one line naming the file, sorting, and fitting a model."""

from __future__ import annotations

import json

import pytest

from core.errors import LensError
from core.formats.mask import MASK_FORMAT, Mask, check_mask_fits, read_mask


def _doc(**changes):
    doc = {
        "format": MASK_FORMAT,
        "model": "m",
        "num_experts": 4,
        "criterion": "mass",
        "sources": [],
        "layers": [[0, 1], [2, 3]],
    }
    doc.update(changes)
    return doc


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"layers": [[0, 4], [1, 2]]}, "layer 0 names expert 4, outside 0..3"),
        ({"layers": [[0, 1], [2, 2]]}, "layer 1 lists expert 2 more than once"),
        ({"layers": [[0, 1], []]}, "layer 1 keeps no experts"),
        ({"layers": [[0, "1"]]}, "layer 0 must be a list of integer expert ids"),
        ({"format": "other"}, "not a mask file"),
        ({"num_experts": 0}, "num_experts must be a positive integer"),
    ],
)
def test_bad_mask_files_are_refused_with_one_line(tmp_path, changes, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_doc(**changes)))
    with pytest.raises(LensError) as err:
        read_mask(path)
    assert message in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_unsorted_ids_are_sorted_and_missing_keys_refused(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps(_doc(layers=[[3, 0], [2, 1]])))
    assert read_mask(path).layers == [[0, 3], [1, 2]]
    doc = _doc()
    del doc["sources"]
    path.write_text(json.dumps(doc))
    with pytest.raises(LensError, match="mask has no 'sources'"):
        read_mask(path)
    path.write_text("{not json")
    with pytest.raises(LensError, match="not valid JSON"):
        read_mask(path)


def test_check_mask_fits_refuses_wrong_shapes_and_short_layers():
    mask = Mask(model="m", num_experts=4, criterion="mass", sources=[], layers=[[0, 1], [2]])
    with pytest.raises(LensError, match="mask has 2 layers but M has 3 MoE layers"):
        check_mask_fits(mask, num_layers=3, num_experts=4, top_k=1, where="x", what="M")
    with pytest.raises(LensError, match="mask is for 4 experts per layer but M has 8"):
        check_mask_fits(mask, num_layers=2, num_experts=8, top_k=1, where="x", what="M")
    with pytest.raises(
        LensError, match="layer 1 keeps 1 experts, fewer than the model's top-k of 2"
    ):
        check_mask_fits(mask, num_layers=2, num_experts=4, top_k=2, where="x", what="M")
    check_mask_fits(mask, num_layers=2, num_experts=4, top_k=1, where="x", what="M")
