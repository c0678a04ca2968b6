"""Flows and ncmle_prob: nflows adapters in both directions, and NCMLE training of
conditional nflows/zuko flows through σ's embedding as context.

See also :class:`ncmle_prob.distributions.transformed.TransformedNoiseConditional`, the
change-of-variables composition of a noise-conditional base with torch transforms.
"""

from .nflows_adapters import NflowsBase, NflowsTransform, SigmaEmbeddingNet
from .wrapper import FlowDistribution, NoiseAffine, NoiseConditionalFlow

__all__ = [
    "FlowDistribution",
    "NflowsBase",
    "NflowsTransform",
    "NoiseAffine",
    "NoiseConditionalFlow",
    "SigmaEmbeddingNet",
]
