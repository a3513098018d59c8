"""Mask-based image edits (CLP's F and CF images) on real spuriverse-world scenes: F keeps exactly the
object's pixels and takes the rest from the donor; CF changes only object pixels and removes the
object's colour (grey, tile) or its shape (shuffle)."""

from __future__ import annotations

import numpy as np
import pytest

from spuriverse.data.edits import CF_FILLS, MaskError, decode_image, decode_mask, encode_png, remove_core, swap_background
from spuriverse.data.world import Cue, render


@pytest.fixture(scope="module")
def scenes():
    a = render("colour", 0, Cue("border", 1), scene_seed=11)  # a red object, cyan border
    b = render("shape", 2, Cue("background", 3), scene_seed=12)  # a triangle on pink
    return a, b


@pytest.mark.parametrize("fill", CF_FILLS)
def test_counterfactual_changes_only_object_pixels(scenes, fill):
    a, _ = scenes
    out = remove_core(a.image, a.core_mask, fill, cue=a.cue_mask, seed=3)
    assert out.shape == a.image.shape and out.dtype == np.uint8
    if fill == "shuffle":  # the object's bounding box is permuted; nothing outside it changes
        rows, cols = np.nonzero(a.core_mask)
        box = np.zeros_like(a.core_mask)
        box[rows.min() - 1: rows.max() + 2, cols.min() - 1: cols.max() + 2] = True
        assert np.array_equal(out[~box], a.image[~box])
        assert sorted(map(tuple, out[box])) == sorted(map(tuple, a.image[box]))  # same pixels, moved
        assert not np.array_equal(out[a.core_mask], a.image[a.core_mask])
    else:
        assert np.array_equal(out[~a.core_mask], a.image[~a.core_mask])
        red = np.array([210, 40, 40])
        assert np.abs(out[a.core_mask].astype(int) - red).sum(1).min() > 60  # no object colour is left
        assert np.array_equal(out[a.cue_mask], a.image[a.cue_mask])  # the cue stays
        if fill == "tile":  # the fill is background texture, not cue colour
            border = a.image[a.cue_mask][0].astype(int)
            assert np.abs(out[a.core_mask].astype(int) - border).sum(1).min() > 60


def test_factual_keeps_the_object_on_the_donor_background(scenes):
    a, b = scenes
    out = swap_background(a.image, a.core_mask, b.image, b.core_mask)
    assert np.array_equal(out[a.core_mask], a.image[a.core_mask])
    rest = ~a.core_mask & ~b.core_mask
    assert np.array_equal(out[rest], b.image[rest])  # the donor's background and cue
    pink = np.array([240, 170, 200])
    hole = b.core_mask & ~a.core_mask  # where the donor's object was: background texture now
    assert hole.any() and np.abs(out[hole].astype(int) - pink).sum(1).max() < 3 * 2 * 10 + 1


def test_round_trip_and_bad_masks(scenes):
    a, _ = scenes
    assert np.array_equal(decode_image(encode_png(a.image)), a.image)
    assert np.array_equal(decode_mask(encode_png(a.core_mask)), a.core_mask)
    with pytest.raises(MaskError, match="does not fit"):
        remove_core(a.image, a.core_mask[:5], "grey")
    with pytest.raises(MaskError, match="empty"):
        remove_core(a.image, np.zeros_like(a.core_mask), "tile")
    with pytest.raises(MaskError, match="unknown fill"):
        remove_core(a.image, a.core_mask, "blur")
