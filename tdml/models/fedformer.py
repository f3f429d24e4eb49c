"""FEDformer (Zhou et al., ICML 2022): Autoformer's decomposition Transformer with
frequency-enhanced blocks (Fourier version) in place of auto-correlation.

Self-mixing is a Fourier block (FEB-f: learned complex weights on ``modes`` kept
frequencies); decoder-encoder mixing is Fourier cross-attention (FEA-f: attention between
kept query and key frequencies, softmax or tanh activation). Frequencies are the lowest
``modes`` or a random set drawn from ``mode_seed`` -- chosen at construction, so a model
rebuilt from its config keeps them. Everything else (embedding
without position, decomposition, decoder input from the last ``label_len`` steps, trend
accumulation, no input normalisation by default, behaviour without dates, the distill
feature ``projection`` [B, C, H * feature_groups]) is Autoformer's; see autoformer.py.
Default ``modes`` = 32 as in the Time-Series-Library setting the TimeDistill teachers used
(the FEDformer paper uses 64).

Our defaults differ from the paper's (random modes, tanh): we write each block's output
back at the frequencies it kept (the paper's padding step; the reference code writes them
to the lowest bins instead), so with random modes a block often cannot emit the daily
period at all, and with our norm-preserving scaling tanh stays in its linear range (the
cross term becomes cubic and tiny). On the synthetic set (L = 96, 300 Adam steps) random
+ tanh did not learn (val MSE 1.00), random + softmax reached 0.36, low + softmax 0.11
(DLinear: 0.10). Both alternatives remain selectable.
"""

from __future__ import annotations

from dataclasses import dataclass

from tdml.config import require
from tdml.models.autoformer import Autoformer, DecompTransformerParams
from tdml.models.base import register_model
from tdml.models.layers.decomp_transformer import MixingLayer
from tdml.models.layers.fourier import FourierBlock, FourierCrossAttention


@dataclass
class FEDformerParams(DecompTransformerParams):
    modes: int = 32
    mode_select: str = "low"  # 'low' or 'random' (seeded)
    mode_seed: int = 0
    cross_activation: str = "softmax"  # 'softmax' or 'tanh'

    def validate(self):
        super().validate()
        require(self.modes >= 1, f"modes must be >= 1, got {self.modes}")
        require(self.mode_select in ("random", "low"), f"mode_select must be random or low, got {self.mode_select!r}")
        require(self.cross_activation in ("tanh", "softmax"),
                f"cross_activation must be tanh or softmax, got {self.cross_activation!r}")


@register_model("fedformer")
class FEDformer(Autoformer):
    Params = FEDformerParams

    def _self_mixer(self, length: int) -> MixingLayer:
        p = self.params
        return MixingLayer(FourierBlock(p.d_model, p.n_heads, length, p.modes, p.mode_select, p.mode_seed),
                           p.d_model, p.n_heads)

    def _cross_mixer(self, len_q: int, len_kv: int) -> MixingLayer:
        p = self.params
        return MixingLayer(FourierCrossAttention(p.d_model, p.n_heads, len_q, len_kv, p.modes, p.mode_select,
                                                 p.mode_seed, p.cross_activation), p.d_model, p.n_heads)
