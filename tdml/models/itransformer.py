"""iTransformer (Liu et al., ICLR 2024): attention across variate tokens.

Each channel's lookback is embedded as one token (calendar features as extra tokens),
a Transformer encoder mixes the tokens, and a linear head maps each variate token to
its horizon. features(): ``encoder`` [B, C, d_model], the encoder output of the variate
tokens (calendar tokens dropped) -- the representation TimeDistill aligns with.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from tdml.config import require
from tdml.models.base import Dims, Forecaster, register_model
from tdml.models.layers.attention import Encoder
from tdml.models.layers.embedding import VariateEmbedding
from tdml.models.layers.normalization import make_normalizer


@dataclass
class ITransformerParams:
    d_model: int = 256
    n_heads: int = 8
    e_layers: int = 2
    d_ff: int = 256
    dropout: float = 0.1
    activation: str = "gelu"
    norm: str = "standard"
    use_time_features: bool = True

    def validate(self):
        require(self.d_model % self.n_heads == 0,
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        require(self.e_layers >= 1, f"e_layers must be >= 1, got {self.e_layers}")


@register_model("itransformer")
class ITransformer(Forecaster):
    Params = ITransformerParams
    uses_time_features = True
    distill_feature = "encoder"

    def __init__(self, dims: Dims, params: ITransformerParams):
        super().__init__(dims, params)
        self.normalizer = make_normalizer(params.norm, dims.n_channels)
        self.embed = VariateEmbedding(dims.seq_len, params.d_model, params.dropout)
        self.encoder = Encoder(params.e_layers, params.d_model, params.n_heads, params.d_ff,
                               params.dropout, params.activation)
        self.head = nn.Linear(params.d_model, dims.pred_len)

    def forward_features(self, x, x_mark=None, y_mark=None):
        z, state = self.normalizer.normalize(x)
        marks = x_mark if self.params.use_time_features else None
        tokens = self.encoder(self.embed(z, marks))[:, : self.dims.n_channels]  # [B, C, D]
        y = self.head(tokens).transpose(1, 2)  # [B, H, C]
        return self.normalizer.denormalize(y, state), {"encoder": tokens}

    def feature_shapes(self):
        return {"encoder": (self.dims.n_channels, self.params.d_model)}
