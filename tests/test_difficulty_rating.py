"""Self-ranking (METHOD.md section 2): the rating parser reads the model's rating, not the scale it quotes."""

from __future__ import annotations

import pytest

from ilr.difficulty import parse_rating


@pytest.mark.parametrize("reply, rating", [
    ("7", 7), ("I'd say 7.", 7), ("10", 10), ("7\n7", 7),
    ("On a scale of 1 to 10, this is a 4.", 4), ("scale from 1 (very easy) to 10 (extremely hard): 2", 2),
    ("between 1 and 10: 5", 5), ("Rating: 8", 8), ("Difficulty: 9. Step 1: factor the polynomial", 9),
    ("6/10", 6), ("3 out of 10", 3), ("7.5", 7.5),
])
def test_ratings(reply, rating):
    assert parse_rating(reply) == pytest.approx((rating - 1) / 9)


@pytest.mark.parametrize("reply", ["On a scale of 1 to 10 ...", "4 or 5", "The answer is 12", "", "hard",
                                   "0", "11"])
def test_no_rating(reply):
    assert parse_rating(reply) is None
