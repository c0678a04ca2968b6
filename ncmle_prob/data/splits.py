"""The documented train/test split of data sets that come without one (folders, arrays)."""

from __future__ import annotations

__all__ = ["SPLITS", "TEST_EVERY", "split_indices"]

#: Every ``TEST_EVERY``-th example (index ≡ TEST_EVERY - 1 mod TEST_EVERY) is a test example.
TEST_EVERY = 10
SPLITS = ("train", "test", "all")


def split_indices(n: int, split: str, *, where: str = "the data") -> list[int]:
    """Indices of ``split`` among ``n`` examples in their stored order.

    ``"test"``: indices ``9, 19, 29, ...`` (every tenth); ``"train"``: the others; ``"all"``:
    every index. Fixed and documented, so a training run and a later evaluation agree.

    Raises:
        ValueError: an unknown split, or a ``"test"`` split that would be empty (fewer than
            ten examples).

    Example:
        >>> split_indices(12, "test"), len(split_indices(12, "train"))
        ([9], 11)
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if split == "all":
        return list(range(n))
    if split == "test" and 0 < n < TEST_EVERY:
        raise ValueError(
            f"{where} has {n} examples, too few for a test split (every {TEST_EVERY}th example); "
            "use split='all', or give separate train and test data"
        )
    test = split == "test"
    return [i for i in range(n) if (i % TEST_EVERY == TEST_EVERY - 1) == test]
