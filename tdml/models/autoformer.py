"""Autoformer (Wu et al., NeurIPS 2021): decomposition Transformer with auto-correlation.

Encoder: embedding (width-3 conv of all channels + Linear of the calendar marks; no
positional code) -> layers of auto-correlation and feed-forward, each followed by a
moving-average decomposition that keeps the seasonal part.
Decoder input: the last ``label_len`` steps (default seq_len // 2) of the lookback's
seasonal part followed by H zeros; its trend starts as the lookback's trend followed by
the lookback mean; its marks are x_mark[-label_len:] followed by y_mark. Decoder layers
(self auto-correlation, cross auto-correlation with the encoder, feed-forward) accumulate
the trends they remove; the forecast is that trend + Linear(d_model -> C) of the seasonal
hidden state, over the last H steps.

Without dates (n_marks = 0 or x_mark/y_mark None) the embeddings are the value convolution
alone; positions are then only implicit (conv context, decoder's zero placeholder block).
Input normalisation defaults to none, as in the paper (``norm`` can switch it on).

features(): ``projection`` [B, C, H * feature_groups], the per-channel terms of the final
seasonal Linear over the forecast steps (layers/heads.ChannelProjection): the seasonal
forecast of channel c split by groups of hidden units (16 groups of 32 at d_model = 512,
so 96 * 16 = 1,536 wide). The model mixes channels at its embedding, so no native
per-channel state exists; this is the per-channel view of its last representation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tdml.config import require
from tdml.models.base import Dims, Forecaster, register_model
from tdml.models.layers.autocorrelation import AutoCorrelation
from tdml.models.layers.decomp_transformer import (DecompDecoder, DecompDecoderLayer, DecompEncoder,
                                                   DecompEncoderLayer, MixingLayer)
from tdml.models.layers.decoder_input import decoder_marks, last_steps, resolve_label_len
from tdml.models.layers.decomposition import SeriesDecomposition
from tdml.models.layers.embedding import DataEmbedding
from tdml.models.layers.heads import ChannelProjection
from tdml.models.layers.normalization import NORMALIZERS, make_normalizer


@dataclass
class DecompTransformerParams:
    d_model: int = 512
    n_heads: int = 8
    e_layers: int = 2
    d_layers: int = 1
    d_ff: int = 2048
    moving_avg: int = 25
    dropout: float = 0.1
    activation: str = "gelu"
    label_len: int | None = None  # None = seq_len // 2
    norm: str = "none"
    use_time_features: bool = True
    feature_groups: int = 16  # hidden-unit groups in the distill feature (must divide d_model)

    def validate(self):
        require(self.d_model % self.n_heads == 0,
                f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        require(self.e_layers >= 1 and self.d_layers >= 1, "e_layers and d_layers must be >= 1")
        require(self.moving_avg >= 1, "moving_avg must be >= 1")
        require(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        require(self.activation in ("gelu", "relu"), f"activation must be gelu or relu, got {self.activation!r}")
        require(self.feature_groups >= 1 and self.d_model % self.feature_groups == 0,
                f"feature_groups ({self.feature_groups}) must divide d_model ({self.d_model})")
        require(self.norm in NORMALIZERS, f"norm {self.norm!r} unknown; valid: {', '.join(NORMALIZERS.names())}")


@dataclass
class AutoformerParams(DecompTransformerParams):
    factor: int = 3  # keeps factor * ln(L) delays

    def validate(self):
        super().validate()
        require(self.factor >= 1, f"factor must be >= 1, got {self.factor}")


@register_model("autoformer")
class Autoformer(Forecaster):
    Params = AutoformerParams
    uses_time_features = True
    distill_feature = "projection"

    def __init__(self, dims: Dims, params: DecompTransformerParams):
        super().__init__(dims, params)
        p, C = params, dims.n_channels
        self.label_len = resolve_label_len(p.label_len, dims.seq_len)
        dec_len = self.label_len + dims.pred_len
        n_marks = dims.n_marks if p.use_time_features else 0
        self.normalizer = make_normalizer(p.norm, C)
        self.decomp = SeriesDecomposition(p.moving_avg)
        self.enc_embed = DataEmbedding(C, p.d_model, n_marks, p.dropout, position=False)
        self.dec_embed = DataEmbedding(C, p.d_model, n_marks, p.dropout, position=False)
        self.encoder = DecompEncoder([
            DecompEncoderLayer(self._self_mixer(dims.seq_len), p.d_model, p.d_ff, p.moving_avg, p.dropout, p.activation)
            for _ in range(p.e_layers)], p.d_model)
        self.decoder = DecompDecoder([
            DecompDecoderLayer(self._self_mixer(dec_len), self._cross_mixer(dec_len, dims.seq_len), p.d_model, p.d_ff,
                               C, p.moving_avg, p.dropout, p.activation)
            for _ in range(p.d_layers)], p.d_model)
        self.head = ChannelProjection(p.d_model, C, p.feature_groups)

    # The token mixers are the only difference between Autoformer and FEDformer.
    def _self_mixer(self, length: int) -> MixingLayer:
        return MixingLayer(AutoCorrelation(self.params.factor), self.params.d_model, self.params.n_heads)

    def _cross_mixer(self, len_q: int, len_kv: int) -> MixingLayer:
        return MixingLayer(AutoCorrelation(self.params.factor), self.params.d_model, self.params.n_heads)

    def forward_features(self, x, x_mark=None, y_mark=None):
        B, _, C = x.shape
        H, n = self.dims.pred_len, self.label_len
        z, state = self.normalizer.normalize(x)
        if not self.params.use_time_features:
            x_mark = y_mark = None
        seasonal, trend = self.decomp(z)
        dec_seasonal = torch.cat([last_steps(seasonal, n), z.new_zeros(B, H, C)], dim=1)
        dec_trend = torch.cat([last_steps(trend, n), z.mean(dim=1, keepdim=True).expand(B, H, C)], dim=1)
        enc = self.encoder(self.enc_embed(z, x_mark))
        h, trend_out = self.decoder(self.dec_embed(dec_seasonal, decoder_marks(x_mark, y_mark, n)), enc, dec_trend)
        h = h[:, -H:]
        y = trend_out[:, -H:] + self.head(h)
        return self.normalizer.denormalize(y, state), {"projection": self.head.contributions(h)}

    def feature_shapes(self):
        return {"projection": (self.dims.n_channels, self.dims.pred_len * self.params.feature_groups)}
