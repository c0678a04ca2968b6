r"""MADE: a σ-conditioned masked autoregressive network for vectors."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..distributions import ConditionalFamily, get_family
from ..distributions.families.base import check_int
from .base import AutoregressiveModel
from .embedding import NoiseEmbedding
from .masked import ACTIVATIONS, MaskedLinear, MaskedMLP

__all__ = ["LAYOUTS", "MADE", "convert_legacy_state_dict", "is_legacy_state_dict"]

#: Buffers that the nflows-based MADE (ncmle_prob 0.1) stored in its state dicts.
_LEGACY_BUFFERS = (".mask", ".degrees")

#: MADE's network layouts: name -> (σ-only hidden units of degree 0, σ in every residual block).
#: Only ``"default"`` lets σ reach dimension 1; the others exist to load old checkpoints.
LAYOUTS: dict[str, tuple[bool, bool]] = {
    "default": (True, False),
    "no_sigma_units": (False, False),  # ncmle_prob 0.1 after the own-network rewrite
    "nflows": (False, True),  # the nflows-based MADE of ncmle_prob 0.1
}

_OLD_LAYOUT_NOTE = (
    "{what} uses MADE layout {layout!r}, in which sigma does not reach dimension 1 "
    "(p(x_1 | sigma) is one law at every sigma); retrain for the default layout"
)


def is_legacy_state_dict(state_dict: dict[str, Tensor], prefix: str = "") -> bool:
    """Whether ``state_dict`` was written by the nflows-based MADE of ncmle_prob 0.1.

    Its masked layers stored ``mask`` and ``degrees`` buffers (``net.initial_layer.mask``...),
    which the current MADE derives from its config and does not store.
    """
    return f"{prefix}net.initial_layer.mask" in state_dict


def convert_legacy_state_dict(
    state_dict: dict[str, Tensor], model: MADE, prefix: str = ""
) -> dict[str, Tensor]:
    """Converts an nflows-era MADE state dict for ``model`` (built with ``legacy_layout=True``).

    The parameter names are the same; the stored masks are checked against ``model``'s (the
    spread hidden degrees) and dropped. Returns a new dict; the input is not modified.

    Raises:
        ValueError: ``model`` does not have the legacy layout, or the stored masks differ.
    """
    if not model.legacy_layout:
        raise ValueError(_legacy_message(model))
    own = {f"{prefix}{name}": m for name, m in model.named_modules() if isinstance(m, MaskedLinear)}
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if not (key.startswith(prefix) and key.endswith(_LEGACY_BUFFERS)):
            out[key] = value
            continue
        layer_name, _, buffer = key.rpartition(".")
        layer = own.get(layer_name)
        if layer is None:  # not a masked layer of ours: let load_state_dict report it
            out[key] = value
            continue
        mine = getattr(layer, buffer)
        if tuple(value.shape) != tuple(mine.shape) or not torch.equal(
            value.to(device=mine.device, dtype=mine.dtype), mine
        ):
            raise ValueError(
                f"state_dict[{key!r}] differs from this MADE's {buffer} (the checkpoint's "
                "masks are not the spread hidden degrees of the nflows-based MADE); it cannot "
                "be converted"
            )
    return out


def _legacy_message(model: MADE) -> str:
    config = {k: v for k, v in model.config.items() if k != "layout"}
    args = ", ".join(f"{k}={v!r}" for k, v in config.items())
    return (
        "this state dict was written by the nflows-based MADE of ncmle_prob 0.1 (it stores "
        "net.*.mask buffers), whose noise embedding enters every residual block; this model's "
        f"layout is {model.layout!r}. Build the model with layout='nflows' and load it again "
        f"(the conversion is then automatic): MADE({args}, layout='nflows')"
    )


class MADE(AutoregressiveModel):
    r"""A noise-conditional MADE: ``model(sigma)`` returns :math:`p_\theta(\cdot \mid \sigma)`.

    The masked network is our own :class:`~ncmle_prob.models.masked.MaskedMLP`: hidden
    degrees spread evenly over ``0..D-1``, σ's embedding added once to the first hidden
    layer, residual blocks (or plain layers), masked weights cached outside training. The
    hidden units of degree 0 see σ alone: they are what makes :math:`p(x_1 \mid \sigma)`
    depend on σ (whose variance must grow as :math:`\operatorname{Var}(x_1) + \sigma^2`
    under noisy data); see :mod:`ncmle_prob.models.masked`.
    Optionally (``linear_skip=True``) a direct masked linear connection from the inputs to the
    location parameters (Germain et al., 2015) represents a linear-Gaussian autoregressive
    process exactly. Output ``i`` depends on ``x[:i]`` and σ only.

    .. math::

        p_\theta(x \mid \sigma) = \prod_{i=1}^{D} p_\text{family}(x_i;\;
        \theta_i(x_{<i}, e(\sigma)))

    Args:
        features: dimension D of the data.
        hidden_features: width of the hidden layers (any size, also below D).
        num_blocks: number of residual blocks (two masked layers each) or plain layers.
        family: name of the per-dimension conditional family
            (see :func:`ncmle_prob.distributions.family_names`).
        components: mixture components (mixture families).
        bins: grid levels on [-1, 1] (``"discretized_logistic_mixture"``).
        noise_features: size of the σ embedding.
        activation: ``"relu"``, ``"elu"``, ``"silu"``, ``"gelu"`` or ``"tanh"``. Smooth
            activations give smooth scores, which Langevin samplers prefer.
        dropout: dropout probability inside the blocks.
        residual: residual blocks or plain feed-forward layers.
        linear_skip: add a strictly lower-triangular linear map of ``x`` (D × D) to every
            location parameter. Off by default: the D × D product costs 1.5-1.8x in
            ``log_prob`` at D = 784 with 256 hidden units (``benchmarks/README.md``).
        layout: ``"default"``, or an old layout kept to load old checkpoints with
            identical ``log_prob`` (see :data:`LAYOUTS`): ``"no_sigma_units"`` (hidden
            degrees over ``1..D-1``) and ``"nflows"`` (the nflows-based MADE of ncmle_prob
            0.1: also σ's embedding in every residual block; its state dicts are converted
            automatically by ``load_state_dict``). In both, σ does not reach dimension 1.
            :func:`~ncmle_prob.training.load_model` picks the layout of a checkpoint itself.
        legacy_layout: ``True`` is ``layout="nflows"``.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> model = MADE(features=2, hidden_features=32, family="logistic_mixture",
        ...              components=4)
        >>> dist = model(0.3)
        >>> x = dist.sample((5,))
        >>> dist.log_prob(x).shape, dist.score(x).shape
        (torch.Size([5]), torch.Size([5, 2]))
    """

    def __init__(
        self,
        features: int,
        hidden_features: int = 64,
        num_blocks: int = 2,
        family: str = "gaussian",
        components: int | None = None,
        bins: int | None = None,
        noise_features: int = 17,
        activation: str = "elu",
        dropout: float = 0.0,
        residual: bool = True,
        linear_skip: bool = False,
        layout: str = "default",
        legacy_layout: bool = False,
    ) -> None:
        super().__init__()
        features = check_int("features", features, 1)
        hidden_features = check_int("hidden_features", hidden_features, 1)
        num_blocks = check_int("num_blocks", num_blocks, 0)
        noise_features = check_int("noise_features", noise_features, 1)
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}"
            )
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {sorted(LAYOUTS)}, got {layout!r}")
        if legacy_layout:
            if layout not in ("default", "nflows"):
                raise ValueError(
                    f"legacy_layout=True means layout='nflows'; got layout={layout!r} as well"
                )
            layout = "nflows"
        sigma_units, every_block = LAYOUTS[layout]
        self.layout = layout
        self.family = get_family(family, components=components, bins=bins)
        self.event_shape = torch.Size([features])
        self.legacy_layout = every_block
        self.embedding = NoiseEmbedding(noise_features)
        self.net = MaskedMLP(
            features,
            hidden_features,
            context_features=self.embedding.num_features,
            num_blocks=num_blocks,
            output_multiplier=self.family.num_params,
            residual=bool(residual),
            activation=activation,
            dropout=float(dropout),
            context_every_block=every_block,
            sigma_units=sigma_units,
        )
        # The output layer's rows are (dimension, parameter) interleaved: row i * P + p. The
        # forward pass reads them in (parameter, dimension) order, so that each parameter kind
        # is one contiguous (N, D) block and the family's element-wise work runs on dense
        # rows, not on stride-P views. A non-persistent permutation: state dicts and
        # checkpoints are unchanged.
        p = self.family.num_params
        order = torch.arange(features * p).view(features, p).t().reshape(-1)
        self.register_buffer("_param_order", order, persistent=False)
        self._out_cache: tuple[tuple[object, ...], Tensor, Tensor] | None = None
        self.skip: MaskedLinear | None = None
        if linear_skip:
            degrees = torch.arange(1, features + 1)
            self.skip = MaskedLinear(degrees, degrees, strict=True, bias=False)
            loc_mask = torch.zeros(self.family.num_params)
            loc_mask[self.family.location_params] = 1.0
            self.register_buffer("_loc_mask", loc_mask, persistent=False)
        self._config: dict[str, Any] = {
            "features": features,
            "hidden_features": hidden_features,
            "num_blocks": num_blocks,
            **self.family.config(),
            "noise_features": noise_features,
            "activation": activation,
            "dropout": float(dropout),
            "residual": bool(residual),
            "linear_skip": bool(linear_skip),
            "layout": layout,
        }

    @property
    def config(self) -> dict[str, Any]:
        """JSON-able constructor arguments: ``MADE(**model.config)`` rebuilds the model."""
        return dict(self._config)

    @classmethod
    def upgrade_config(
        cls, config: dict[str, Any], state_dict: dict[str, Any]
    ) -> tuple[dict[str, Any], str | None]:
        """The config of a checkpoint in today's terms, and a note when its layout is old.

        Configs written before ``layout`` existed name no layout: an nflows-era state dict
        (it stores ``net.*.mask`` buffers) or ``legacy_layout=True`` means ``"nflows"``,
        anything else ``"no_sigma_units"``. The weights are never changed here.

        Example:
            >>> config, note = MADE.upgrade_config({"features": 2}, {})
            >>> config
            {'features': 2, 'layout': 'no_sigma_units'}
            >>> "does not reach dimension 1" in note
            True
        """
        out = {k: v for k, v in config.items() if k != "legacy_layout"}
        if "layout" not in out:
            legacy = config.get("legacy_layout") or is_legacy_state_dict(state_dict)
            out["layout"] = "nflows" if legacy else "no_sigma_units"
        elif config.get("legacy_layout"):
            out["layout"] = "nflows"
        note = None
        if out["layout"] != "default":
            note = _OLD_LAYOUT_NOTE.format(what="this checkpoint", layout=out["layout"])
        return out, note

    def conditional_params(self, x: Tensor, sigma: Tensor) -> Tensor:
        """Raw family parameters, shape ``(N, D, num_params)``; row ``i`` sees ``x[:, :i]``.

        The result is a transposed view of an ``(N, num_params, D)`` tensor (each parameter
        kind a contiguous block; see :meth:`output_weights`): index it, ``unbind``, ``split``
        or ``reshape`` it, but do not ``view`` its last two dims together.
        """
        context = self.embedding(sigma)
        net = self.net
        if context.shape[-1] != net.context_layer.in_features:
            raise ValueError(
                f"the noise embedding returns {context.shape[-1]} features but this MADE's "
                f"network takes {net.context_layer.in_features} (noise_features); build "
                "the model with the embedding's size instead of replacing model.embedding"
            )
        h = net.trunk(
            net.first_preactivation(x, context), net.block_weights(), net.block_contexts(context)
        )
        w, b = self.output_weights()
        n, d, p = x.shape[0], self.event_shape[0], self.family.num_params
        out = F.linear(h, w, b).view(n, p, d)
        if self.skip is not None:
            # Only the location rows get the skip term (the old ``out + skip * loc_mask``
            # added exact zeros elsewhere); in place on the fresh output of ``F.linear``.
            out[:, self.family.location_params].add_(self.skip(x).unsqueeze(1))
        return out.transpose(1, 2)

    def output_weights(self) -> tuple[Tensor, Tensor]:
        r"""The output layer's masked weight and bias with rows in (parameter, dimension)
        order: ``(P * D, H)`` and ``(P * D,)``, row ``p * D + i`` for parameter ``p`` of
        dimension ``i``.

        Recomputed (differentiably) on every call while training or while a gradient can
        flow to the weights, as :meth:`MaskedLinear.masked_weight` does; otherwise cached,
        keyed on the weight's and bias's version counters and storage.
        """
        layer = self.net.final_layer
        w, b = layer.weight, layer.bias
        if self.training or torch.is_inference_mode_enabled() or (
            torch.is_grad_enabled() and (w.requires_grad or b.requires_grad)
        ):
            order = self._param_order
            return layer.masked_weight().index_select(0, order), b.index_select(0, order)
        key = (w._version, w.data_ptr(), b._version, b.data_ptr(), w.dtype, w.device,
               layer.mask._version, layer.mask.data_ptr())
        cache = self._out_cache
        if cache is None or cache[0] != key:
            order = self._param_order
            cache = (key, layer.masked_weight().index_select(0, order).detach(),
                     b.detach().index_select(0, order))
            self._out_cache = cache
        return cache[1], cache[2]

    @torch.no_grad()
    def ancestral_sample(
        self, family: ConditionalFamily, sigma: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        r"""D sequential draws, shape ``(N, D)``, with the network's work cached across steps.

        Output ``i`` depends on ``x[:, :i]`` only, so step ``i`` needs the first layer's
        pre-activation updated by the rank-one term :math:`x_{i-1} (W_0 \odot M_0)[:, i-1]`
        (not recomputed), the hidden blocks, and only the ``num_params`` rows of the output
        layer (and the one row of the skip connection) that belong to dimension ``i``. Masked
        weights and σ's context are computed once. The draws equal those of the generic loop
        of :class:`~ncmle_prob.distributions.NoiseConditionalAutoregressive` (same generator
        stream; equal up to floating-point rounding).
        """
        net = self.net
        n, d, p = sigma.shape[0], self.event_shape[0], family.num_params
        context = self.embedding(sigma)
        x = torch.zeros(n, d, dtype=context.dtype, device=context.device)
        h0 = net.first_preactivation(x, context)  # at x = 0
        w0 = net.initial_layer.masked_weight()
        weights = net.block_weights()
        contexts = net.block_contexts(context)
        wf = net.final_layer.masked_weight().view(d, p, -1)
        bf = net.final_layer.bias.view(d, p)
        ws = None if self.skip is None else self.skip.masked_weight()
        for i in range(d):
            t = net.trunk(h0, weights, contexts)
            out = torch.addmm(bf[i], t, wf[i].t())
            if ws is not None and i:
                out = out + (x[:, :i] @ ws[i, :i]).unsqueeze(-1) * self._loc_mask
            x[:, i] = family.sample(out, sigma, generator)
            h0 = torch.addr(h0, x[:, i], w0[:, i])
        return x

    #: State-dict version (torch's ``_version``): 2 since masks are derived, not stored.
    _version = 2

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # Called before the submodules load: torch's pattern for versioned state dicts. A
        # state dict without a version (all of them before version 2, and the plain dicts of
        # checkpoints) that stores nflows-era masks is converted in place, or refused with a
        # clear message. This is the only place an old MADE state dict is converted.
        version = local_metadata.get("version")
        if (version is None or version < 2) and is_legacy_state_dict(state_dict, prefix):
            converted = convert_legacy_state_dict(state_dict, self, prefix)
            for key in [k for k in state_dict if k not in converted]:
                del state_dict[key]
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def extra_repr(self) -> str:
        layout = "" if self.layout == "default" else f", layout={self.layout!r}"
        return f"features={self.event_shape[0]}, family={self.family!r}{layout}"
