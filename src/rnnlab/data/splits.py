"""How many examples (or time steps) go to train, val and test: arithmetic on counts only.

Kept apart from the loaders, without torch, so that checking a user's file before a run (is
anything left to train on? does every label reach the training split?) gives exactly the
answer the split itself will give, in a fraction of a second.
"""

from __future__ import annotations

from dataclasses import dataclass

SPLITS = ("train", "val", "test")


def split_sizes(num: int, fractions: tuple[float, float]) -> tuple[int, int, int]:
    """(train, val, test) sizes of `num` examples split by (val, test) fractions.

    Val and test are rounded and take what there is first; train gets the rest, possibly
    nothing. A stratified split applies this to each class on its own.
    """
    n_val = min(round(num * fractions[0]), num)
    n_test = min(round(num * fractions[1]), num - n_val)
    return num - n_val - n_test, n_val, n_test


@dataclass(frozen=True)
class Boundaries:
    """Split ends in time order: train is [0, train_end), val [train_end, val_end), test after."""

    train_end: int
    val_end: int
    total: int

    @classmethod
    def of(cls, total: int, val_fraction: float, test_fraction: float) -> Boundaries:
        n_test = max(1, round(total * test_fraction))
        n_val = max(1, round(total * val_fraction))
        return cls(total - n_val - n_test, total - n_test, total)

    def origins(self, split: str, context: int, horizon: int, stride: int) -> range:
        """First target index of every window whose targets lie inside `split`."""
        lo, hi = {
            "train": (0, self.train_end),
            "val": (self.train_end, self.val_end),
            "test": (self.val_end, self.total),
        }[split]
        return range(max(lo, context), hi - horizon + 1, stride)
