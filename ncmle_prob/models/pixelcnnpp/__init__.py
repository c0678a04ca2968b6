"""PixelCNN++ with noise-level conditioning (:class:`PixelCNNPP`) and its building blocks."""

from .layers import (
    BandContext,
    DownRightShiftedConv2d,
    DownRightShiftedDeconv2d,
    DownShiftedConv2d,
    DownShiftedDeconv2d,
    GatedResnet,
    concat_elu,
    down_shift,
    right_shift,
)
from .network import PixelCNNPP
from .sampling import cached_ancestral_sample, naive_ancestral_sample

__all__ = [
    "BandContext",
    "DownRightShiftedConv2d",
    "DownRightShiftedDeconv2d",
    "DownShiftedConv2d",
    "DownShiftedDeconv2d",
    "GatedResnet",
    "PixelCNNPP",
    "cached_ancestral_sample",
    "concat_elu",
    "down_shift",
    "naive_ancestral_sample",
    "right_shift",
]
