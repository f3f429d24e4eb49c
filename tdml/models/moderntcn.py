"""ModernTCN (Luo & Wang, ICLR 2024): a pure convolutional block modernised like a Transformer.

Each channel is patchified by a strided Conv1d (patch ``patch_size`` every ``patch_stride``,
end-padded, N = (L - S) // S + 1 patches) into D features. A block then applies
  * a depthwise large-kernel conv along the patches (per channel and feature), plus a
    small-kernel branch (the paper's structural re-parameterisation, kept un-merged), BatchNorm;
  * ConvFFN1: pointwise convs grouped by channel (mixes the D features of one channel);
  * ConvFFN2: pointwise convs grouped by feature (mixes the channels of one feature);
with a residual connection. A Linear shared by channels maps the flattened [D * N] to H.
One stage of ``num_blocks`` blocks (the reference ETTh1 setting); no down-sampling stages.

Parameter count grows with C^2 through ConvFFN2 (D * 2 * C^2 * ffn_ratio): this is where
the published ~132 M parameters at C = 321 come from.

features(): ``backbone`` [B, C, D * N], each channel's block output flattened -- what the
head reads (also the reference's choice). Calendar features are not used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tdml.config import require
from tdml.models.base import Dims, Forecaster, register_model
from tdml.models.layers.normalization import NORMALIZERS, make_normalizer


@dataclass
class ModernTCNParams:
    patch_size: int = 8
    patch_stride: int = 4
    d_model: int = 64  # the paper's D ("dims")
    num_blocks: int = 1
    large_kernel: int = 51
    small_kernel: int = 5
    ffn_ratio: int = 1
    dropout: float = 0.3
    head_dropout: float = 0.0
    norm: str = "revin"

    def validate(self):
        require(self.patch_size >= self.patch_stride >= 1, "need patch_size >= patch_stride >= 1")
        require(self.large_kernel % 2 == 1 and self.small_kernel % 2 == 1,
                "large_kernel and small_kernel must be odd (length-preserving 'same' padding)")
        require(self.small_kernel <= self.large_kernel, "small_kernel must be <= large_kernel")
        require(self.d_model >= 1 and self.num_blocks >= 1 and self.ffn_ratio >= 1,
                "d_model, num_blocks and ffn_ratio must be >= 1")
        require(0 <= self.dropout < 1 and 0 <= self.head_dropout < 1, "dropouts must be in [0, 1)")
        require(self.norm in NORMALIZERS, f"norm {self.norm!r} unknown; valid: {', '.join(NORMALIZERS.names())}")


def _grouped_ffn(width: int, ratio: int, groups: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(width, width * ratio, 1, groups=groups), nn.GELU(), nn.Dropout(dropout),
                         nn.Conv1d(width * ratio, width, 1, groups=groups), nn.Dropout(dropout))


class ModernTCNBlock(nn.Module):
    def __init__(self, n_vars: int, d_model: int, large: int, small: int, ffn_ratio: int, dropout: float):
        super().__init__()
        width = n_vars * d_model
        self.large = nn.Conv1d(width, width, large, padding=large // 2, groups=width, bias=False)
        self.small = nn.Conv1d(width, width, small, padding=small // 2, groups=width, bias=False)
        self.large_bn, self.small_bn = nn.BatchNorm1d(width), nn.BatchNorm1d(width)
        self.norm = nn.BatchNorm1d(d_model)
        self.ffn_vars = _grouped_ffn(width, ffn_ratio, n_vars, dropout)  # per channel: mixes features
        self.ffn_feats = _grouped_ffn(width, ffn_ratio, d_model, dropout)  # per feature: mixes channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, M, D, N]
        B, M, D, N = x.shape
        h = x.reshape(B, M * D, N)
        h = self.large_bn(self.large(h)) + self.small_bn(self.small(h))
        h = self.norm(h.reshape(B * M, D, N)).reshape(B, M * D, N)
        h = self.ffn_vars(h)  # group m = channels m*D .. m*D+D-1: one variable's features
        h = h.reshape(B, M, D, N).transpose(1, 2).reshape(B, D * M, N)
        h = self.ffn_feats(h)  # group d = one feature across all variables
        return x + h.reshape(B, D, M, N).transpose(1, 2)


@register_model("moderntcn")
class ModernTCN(Forecaster):
    Params = ModernTCNParams
    distill_feature = "backbone"

    def __init__(self, dims: Dims, params: ModernTCNParams):
        super().__init__(dims, params)
        p = params
        require(dims.seq_len >= p.patch_stride, f"seq_len {dims.seq_len} shorter than patch_stride {p.patch_stride}")
        self.n_patches = (dims.seq_len - p.patch_stride) // p.patch_stride + 1
        self.normalizer = make_normalizer(p.norm, dims.n_channels)
        self.stem = nn.Conv1d(1, p.d_model, p.patch_size, stride=p.patch_stride)
        self.blocks = nn.Sequential(*(ModernTCNBlock(dims.n_channels, p.d_model, p.large_kernel, p.small_kernel,
                                                     p.ffn_ratio, p.dropout) for _ in range(p.num_blocks)))
        self.head = nn.Sequential(nn.Dropout(p.head_dropout), nn.Linear(p.d_model * self.n_patches, dims.pred_len))

    def forward_features(self, x, x_mark=None, y_mark=None):
        B, L, C = x.shape
        p = self.params
        z, state = self.normalizer.normalize(x)
        z = z.transpose(1, 2).reshape(B * C, 1, L)
        z = torch.cat([z, z[..., -1:].expand(-1, -1, p.patch_size - p.patch_stride)], dim=-1)
        h = self.blocks(self.stem(z).reshape(B, C, p.d_model, -1))  # [B, C, D, N]
        flat = h.reshape(B, C, -1)
        y = self.head(flat).transpose(1, 2)
        return self.normalizer.denormalize(y, state), {"backbone": flat}

    def feature_shapes(self):
        return {"backbone": (self.dims.n_channels, self.params.d_model * self.n_patches)}
