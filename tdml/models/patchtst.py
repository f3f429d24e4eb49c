"""PatchTST (Nie et al., ICLR 2023): channel-independent Transformer over patches.

Each channel (after RevIN) is cut into overlapping patches of ``patch_len`` every ``stride``
steps (end-padded, N = (L - P) // S + 2 patches), embedded with a learned position, encoded
by a Transformer with BatchNorm, then flattened and mapped to the horizon by one Linear
shared by all channels. Calendar features are not used (``uses_time_features = False``),
so datasets with and without dates behave the same.

features(): ``encoder`` [B, C, N * d_model], each channel's encoder output flattened --
exactly what the linear head reads (also the reference's choice). Wide: 90 * 512 = 46,080
at L = 720 with the reference sizes. The reference's residual attention scores across
layers are not implemented (the reference setting has one layer, where it does nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from tdml.config import require
from tdml.models.base import Dims, Forecaster, register_model
from tdml.models.layers.attention import BatchNormEncoderLayer
from tdml.models.layers.embedding import PatchEmbedding, patch_count
from tdml.models.layers.normalization import NORMALIZERS, make_normalizer


@dataclass
class PatchTSTParams:
    patch_len: int = 16
    stride: int = 8
    d_model: int = 512
    n_heads: int = 16
    e_layers: int = 1
    d_ff: int = 2048
    dropout: float = 0.2
    head_dropout: float = 0.0
    activation: str = "gelu"
    norm: str = "revin"

    def validate(self):
        require(self.patch_len >= 1 and self.stride >= 1, "patch_len and stride must be >= 1")
        require(self.d_model % self.n_heads == 0,
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        require(self.e_layers >= 1, f"e_layers must be >= 1, got {self.e_layers}")
        require(0 <= self.dropout < 1 and 0 <= self.head_dropout < 1, "dropouts must be in [0, 1)")
        require(self.norm in NORMALIZERS, f"norm {self.norm!r} unknown; valid: {', '.join(NORMALIZERS.names())}")


@register_model("patchtst")
class PatchTST(Forecaster):
    Params = PatchTSTParams
    distill_feature = "encoder"

    def __init__(self, dims: Dims, params: PatchTSTParams):
        super().__init__(dims, params)
        p = params
        require(dims.seq_len + p.stride >= p.patch_len,
                f"patch_len ({p.patch_len}) too long for seq_len {dims.seq_len} and stride {p.stride}")
        self.n_patches = patch_count(dims.seq_len, p.patch_len, p.stride)
        self.normalizer = make_normalizer(p.norm, dims.n_channels)
        self.embed = PatchEmbedding(dims.seq_len, p.patch_len, p.stride, p.d_model, p.dropout)
        self.encoder = nn.Sequential(*(BatchNormEncoderLayer(p.d_model, p.n_heads, p.d_ff, p.dropout, p.activation)
                                       for _ in range(p.e_layers)))
        self.head = nn.Sequential(nn.Dropout(p.head_dropout), nn.Linear(self.n_patches * p.d_model, dims.pred_len))

    def forward_features(self, x, x_mark=None, y_mark=None):
        B, L, C = x.shape
        z, state = self.normalizer.normalize(x)
        tokens = self.encoder(self.embed(z.transpose(1, 2).reshape(B * C, L)))  # [B*C, N, d]
        flat = tokens.reshape(B, C, -1)  # [B, C, N*d]
        y = self.head(flat).transpose(1, 2)  # [B, H, C]
        return self.normalizer.denormalize(y, state), {"encoder": flat}

    def feature_shapes(self):
        return {"encoder": (self.dims.n_channels, self.n_patches * self.params.d_model)}
