"""Classification distillation losses pinned on small hand-checked inputs.

Covers MemKD, KD, FitNet, RKD, AT, DKD and DT2W (soft-DTW): values, zero/invariance
properties, registry + config, and that gradients reach the student (and the losses'
learned parts) but never the teacher.
"""

from __future__ import annotations

import math

import pytest
import torch

from tdml.losses import dt2w, hints, kd, memkd  # noqa: F401  (registers the losses)
from tdml.losses.base import LOSSES, ModelOutput, weighted_sum
from tdml.losses.common import LossConfig
from tdml.losses.dt2w import DT2WConfig, DT2WLoss, pairwise_cost, soft_dtw
from tdml.losses.hints import ATConfig, ATLoss, FitNetLoss, RKDConfig, RKDLoss
from tdml.losses.kd import DKDConfig, DKDLoss, KDConfig, KDLoss
from tdml.losses.memkd import MemKDConfig, MemKDLoss, sample_pairs
from tdml.errors import ConfigError, IncompatibleTeacherError


def build_loss(name: str, params: dict | None = None, **kwargs):
    """A registered loss from a config mapping (unknown keys fail with the valid ones)."""
    from tdml.config import coerce_dataclass
    from tdml.losses import LOSSES

    cls = LOSSES.get(name)
    return cls(coerce_dataclass(cls.Config, params or {}, where=f"loss {name!r}"), **kwargs)


@pytest.fixture(autouse=True)
def _cpu_threads():
    torch.set_num_threads(1)  # the suite runs next to other jobs on a small machine


NAMES = ["memkd", "kd", "fitnet", "rkd", "at", "dkd", "dt2w"]


def seq_out(h: torch.Tensor, pred: torch.Tensor | None = None) -> ModelOutput:
    pred = pred if pred is not None else torch.zeros(h.shape[0], 2)
    return ModelOutput(pred, {"sequence": h})


def logit_out(z: torch.Tensor) -> ModelOutput:
    return ModelOutput(z, {})


def t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def orthogonal_embed(h: torch.Tensor, width: int, seed: int = 0) -> torch.Tensor:
    """h [.., d] -> [.., width] with a random orthonormal map (norms and distances kept)."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(width, h.shape[-1], generator=g, dtype=torch.float64))
    return (h.double() @ q.T).to(h.dtype)


# --------------------------------------------------------------------------- registry and configs


def test_every_loss_registered_and_built_from_config():
    for name in NAMES:
        assert name in LOSSES
        loss = build_loss(name, {"weight": 0.5}, d_student=8, d_teacher=100)
        assert all(w == pytest.approx(0.5 * r) for w, r in zip(loss.weights().values(), loss.term_weights().values()))
    with pytest.raises(ConfigError, match="valid keys: .*long_pairs"):
        build_loss("memkd", {"long_pair": 3})
    with pytest.raises(ConfigError, match="temperature"):
        build_loss("kd", {"temperature": 0})
    with pytest.raises(ConfigError, match="min_gap"):
        build_loss("memkd", {"min_gap": 1})
    with pytest.raises(ConfigError, match="weight"):
        build_loss("at", {"weight": -1})


def test_zero_sub_weight_drops_the_term():
    h = torch.randn(3, 6, 4)
    assert set(MemKDLoss(MemKDConfig(long_weight=0))(seq_out(h), seq_out(h))) == {"mem_short"}
    assert set(RKDLoss(RKDConfig(angle_weight=0))(seq_out(h), seq_out(h))) == {"rkd_distance"}
    z, y = torch.randn(3, 4), torch.tensor([0, 1, 2])
    assert set(DKDLoss(DKDConfig(alpha=0))(logit_out(z), logit_out(z), y)) == {"dkd_nontarget"}


def test_sequence_mismatch_is_a_clear_error():
    loss = MemKDLoss(MemKDConfig())
    with pytest.raises(IncompatibleTeacherError, match="same sequence length"):
        loss(seq_out(torch.randn(2, 5, 3)), seq_out(torch.randn(2, 6, 3)))
    with pytest.raises(IncompatibleTeacherError, match="no feature 'sequence'"):
        loss(logit_out(torch.randn(2, 2)), seq_out(torch.randn(2, 5, 3)))


# --------------------------------------------------------------------------- gradients: student only


def _make(name: str, ds: int, dt: int):
    return build_loss(name, {}, d_student=ds, d_teacher=dt)


@pytest.mark.parametrize("name", NAMES)
def test_gradient_reaches_student_and_learned_parts_only(name):
    torch.manual_seed(0)
    b, length, ds, dt, k = 4, 7, 3, 5, 3
    hs = torch.randn(b, length, ds, requires_grad=True)
    zs = torch.randn(b, k, requires_grad=True)
    ht = torch.randn(b, length, dt, requires_grad=True)
    zt = torch.randn(b, k, requires_grad=True)
    loss = _make(name, ds, dt)
    terms = loss(ModelOutput(zs, {"sequence": hs}), ModelOutput(zt, {"sequence": ht}), torch.tensor([0, 1, 2, 0]))
    assert terms and all(v.dim() == 0 and torch.isfinite(v) for v in terms.values())
    weighted_sum(terms, loss.weights()).backward()
    assert ht.grad is None and zt.grad is None
    student_grads = [g.abs().sum() for g in (hs.grad, zs.grad) if g is not None]
    assert student_grads and sum(student_grads) > 0
    for p in loss.parameters():  # fitnet regressor, dt2w projection
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert (len(list(loss.parameters())) > 0) == (name in ("fitnet", "dt2w"))


# --------------------------------------------------------------------------- MemKD


def test_memkd_hand_checked():
    # teacher h = (1,0),(1,1),(3,1): m(0,1) = 1, m(1,1) = 2/sqrt(2), m(0,2) = sqrt(5)
    # student h = 1, 2, 2:           m(0,1) = 1, m(1,1) = 0,         m(0,2) = 1
    ht = t([[[1, 0], [1, 1], [3, 1]]])
    hs = t([[[1], [2], [2]]])
    terms = MemKDLoss(MemKDConfig(eps=1e-9))(seq_out(hs), seq_out(ht))
    smooth = lambda x: 0.5 * x * x if abs(x) < 1 else abs(x) - 0.5  # noqa: E731  SmoothL1, beta 1
    assert terms["mem_short"].item() == pytest.approx((smooth(0) + smooth(math.sqrt(2))) / 2, rel=1e-5)
    assert terms["mem_long"].item() == pytest.approx(smooth(math.sqrt(5) - 1), rel=1e-5)  # only (t, z) = (0, 2)


def test_memkd_raw_responses_without_the_normaliser():
    """normalize=none: m(t, z) = ||h_{t+z} - h_t|| (the paper leaves the normaliser open). Same
    sequences as above: teacher m(0,1) = 1, m(1,1) = 2, m(0,2) = sqrt(5); student 1, 0, 1. Unlike the
    default, a rescaled student no longer matches its teacher."""
    ht, hs = t([[[1, 0], [1, 1], [3, 1]]]), t([[[1], [2], [2]]])
    terms = MemKDLoss(MemKDConfig(normalize="none"))(seq_out(hs), seq_out(ht))
    smooth = lambda x: 0.5 * x * x if abs(x) < 1 else abs(x) - 0.5  # noqa: E731  SmoothL1, beta 1
    assert terms["mem_short"].item() == pytest.approx((smooth(0) + smooth(2)) / 2, rel=1e-5)
    assert terms["mem_long"].item() == pytest.approx(smooth(math.sqrt(5) - 1), rel=1e-5)
    scaled = MemKDLoss(MemKDConfig(normalize="none"))(seq_out(3 * ht), seq_out(ht))
    assert scaled["mem_short"].item() > 0.5
    with pytest.raises(Exception, match="normalize"):
        build_loss("memkd", {"normalize": "cell"})


def test_memkd_state_cell_compares_the_cell_sequences():
    """state=cell (the paper leaves h or c open): the terms are those of the cell-state sequences;
    a model without them is refused, naming the features it has."""
    torch.manual_seed(0)
    h, c = torch.randn(2, 6, 4), torch.randn(2, 6, 4)
    ht, ct = torch.randn(2, 6, 5), torch.randn(2, 6, 5)
    cfg = dict(long_pairs=8, seed=0)
    on_cell = MemKDLoss(MemKDConfig(state="cell", **cfg))(ModelOutput(None, {"sequence": h, "cell_sequence": c}),
                                                          ModelOutput(None, {"sequence": ht, "cell_sequence": ct}))
    direct = MemKDLoss(MemKDConfig(**cfg))(seq_out(c), seq_out(ct))
    for term in ("mem_short", "mem_long"):
        assert on_cell[term].item() == pytest.approx(direct[term].item())
    with pytest.raises(IncompatibleTeacherError, match="no feature 'cell_sequence'.*sequence"):
        MemKDLoss(MemKDConfig(state="cell"))(seq_out(c), seq_out(ct))
    with pytest.raises(Exception, match="state"):
        build_loss("memkd", {"state": "memory"})


def test_memkd_zero_for_scaled_and_rotated_teacher_of_other_width():
    torch.manual_seed(1)
    ht = torch.randn(3, 10, 6) + 2.0
    hs = 0.1 * orthogonal_embed(ht, 9)  # other width, scale and basis: the same memory responses
    terms = MemKDLoss(MemKDConfig(long_pairs=64))(seq_out(hs), seq_out(ht))
    assert terms["mem_short"].item() < 1e-9 and terms["mem_long"].item() < 1e-9
    other = MemKDLoss(MemKDConfig())(seq_out(torch.randn(3, 10, 6)), seq_out(ht))
    assert other["mem_short"].item() > 1e-3 and other["mem_long"].item() > 1e-3


def test_memkd_pairs_reproducible_and_in_range():
    def draw(seed, **kw):
        g = torch.Generator().manual_seed(seed)
        return sample_pairs(20, 4000, generator=g, **kw)

    start, gap = draw(0, min_gap=2, max_gap=0)
    assert gap.min() == 2 and gap.max() == 19 and (start >= 0).all() and (start + gap <= 19).all()
    counts = torch.bincount(gap, minlength=20)[2:].float()
    assert counts.min() > 0.6 * counts.mean()  # z uniform over the allowed gaps
    assert torch.equal(draw(0, min_gap=2, max_gap=0)[0], start)
    assert not torch.equal(draw(1, min_gap=2, max_gap=0)[0], start)
    _, capped = draw(0, min_gap=3, max_gap=5)
    assert capped.min() == 3 and capped.max() == 5
    assert draw(0, min_gap=2, max_gap=0)[0].numel() == 4000
    short, _ = sample_pairs(2, 5, 2, 0, torch.Generator())
    assert short.numel() == 0  # no gap >= 2 fits in 2 steps


def test_memkd_loss_reproducible_from_config_seed():
    torch.manual_seed(2)
    hs, ht = torch.randn(2, 30, 3), torch.randn(2, 30, 5)

    def run(seed):
        loss = MemKDLoss(MemKDConfig(seed=seed, long_pairs=4, short_weight=0))
        return [loss(seq_out(hs), seq_out(ht))["mem_long"].item() for _ in range(3)]

    a = run(0)
    assert a == run(0) and a != run(1)
    assert len(set(a)) == 3  # a new draw every batch


def test_memkd_short_sequences_and_zero_states():
    loss = MemKDLoss(MemKDConfig())
    hs = torch.zeros(2, 2, 3, requires_grad=True)  # all-zero memory: norm gradients must stay finite
    terms = loss(seq_out(hs), seq_out(torch.randn(2, 2, 4)))
    assert terms["mem_long"].item() == 0.0
    sum(terms.values()).backward()
    assert torch.isfinite(hs.grad).all()


# --------------------------------------------------------------------------- KD


def test_kd_hand_checked_with_temperature_scaling():
    zs, zt = t([[0.0, 0.0]]), t([[math.log(3.0), 0.0]])
    kl1 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    kd1 = KDLoss(KDConfig(temperature=1.0))(logit_out(zs), logit_out(zt))["kd"]
    assert kd1.item() == pytest.approx(kl1, rel=1e-5)
    p = math.sqrt(3) / (math.sqrt(3) + 1)  # softmax([ln3 / 2, 0])[0]
    kl2 = p * math.log(p / 0.5) + (1 - p) * math.log((1 - p) / 0.5)
    kd2 = KDLoss(KDConfig(temperature=2.0))(logit_out(zs), logit_out(zt))["kd"]
    assert kd2.item() == pytest.approx(4 * kl2, rel=1e-5)  # T² scaling


def test_kd_zero_when_equal_and_shift_invariant():
    z = torch.randn(5, 4)
    loss = KDLoss(KDConfig())
    assert loss(logit_out(z), logit_out(z))["kd"].item() == pytest.approx(0, abs=1e-6)
    assert loss(logit_out(z + 3.0), logit_out(z))["kd"].item() == pytest.approx(0, abs=1e-6)
    assert loss(logit_out(torch.randn(5, 4)), logit_out(z))["kd"].item() > 0


def test_kd_is_batch_mean_of_per_sample_kl():
    zs, zt = torch.randn(6, 3), torch.randn(6, 3)
    loss = KDLoss(KDConfig(temperature=1.0))
    each = [loss(logit_out(zs[i:i + 1]), logit_out(zt[i:i + 1]))["kd"] for i in range(6)]
    assert loss(logit_out(zs), logit_out(zt))["kd"].item() == pytest.approx(torch.stack(each).mean().item(), rel=1e-5)


# --------------------------------------------------------------------------- DKD


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_dkd_decomposes_kd(temperature):
    """Per sample: KD = TCKD + (1 - p_teacher(target)) * NCKD (Zhao et al. 2022, eq. 4)."""
    torch.manual_seed(3)
    dkd = DKDLoss(DKDConfig(temperature=temperature))
    kdl = KDLoss(KDConfig(temperature=temperature))
    for _ in range(5):
        zs, zt = torch.randn(1, 5), torch.randn(1, 5)
        y = torch.randint(0, 5, (1,))
        terms = dkd(logit_out(zs), logit_out(zt), y)
        pt_target = torch.softmax(zt / temperature, -1)[0, y].item()
        expected = kdl(logit_out(zs), logit_out(zt))["kd"].item()
        got = terms["dkd_target"].item() + (1 - pt_target) * terms["dkd_nontarget"].item()
        assert got == pytest.approx(expected, rel=1e-4, abs=1e-7)


def test_dkd_hand_checked_and_special_cases():
    # 3 classes, target 0, T = 1: teacher p = (1/2, 1/4, 1/4), student p = (1/3, 1/3, 1/3)
    zt, zs, y = t([[math.log(2.0), 0.0, 0.0]]), t([[0.0, 0.0, 0.0]]), torch.tensor([0])
    terms = DKDLoss(DKDConfig(temperature=1.0))(logit_out(zs), logit_out(zt), y)
    tckd = 0.5 * math.log(0.5 / (1 / 3)) + 0.5 * math.log(0.5 / (2 / 3))
    assert terms["dkd_target"].item() == pytest.approx(tckd, rel=1e-5)
    assert terms["dkd_nontarget"].item() == pytest.approx(0.0, abs=1e-7)  # both uniform over classes 1, 2
    z = torch.randn(4, 3)
    same = DKDLoss(DKDConfig())(logit_out(z), logit_out(z), torch.tensor([0, 1, 2, 1]))
    assert all(v.item() == pytest.approx(0, abs=1e-6) for v in same.values())
    binary = DKDLoss(DKDConfig())(logit_out(torch.randn(3, 2)), logit_out(torch.randn(3, 2)), torch.tensor([0, 1, 1]))
    assert binary["dkd_nontarget"].item() == pytest.approx(0, abs=1e-7)  # one non-target class: nothing to match
    with pytest.raises(ValueError, match="labels"):
        DKDLoss(DKDConfig())(logit_out(z), logit_out(z), None)


def test_dkd_extreme_logits_stay_finite():
    zs = t([[80.0, -80.0, 0.0]]).requires_grad_()
    terms = DKDLoss(DKDConfig(temperature=1.0))(logit_out(zs), logit_out(t([[-80.0, 80.0, 0.0]])), torch.tensor([0]))
    sum(terms.values()).backward()
    assert all(torch.isfinite(v) for v in terms.values()) and torch.isfinite(zs.grad).all()


# --------------------------------------------------------------------------- FitNet


def test_fitnet_hand_checked_regressor_student_to_teacher():
    loss = FitNetLoss(LossConfig(), d_student=1, d_teacher=2)
    assert tuple(loss.regressor.weight.shape) == (2, 1)  # Linear(d_student -> d_teacher)
    with torch.no_grad():
        loss.regressor.weight.copy_(t([[2.0], [-1.0]]))
        loss.regressor.bias.copy_(t([0.0, 1.0]))
    hs = t([[[1.0], [0.0]]])  # R(hs) = (2, 0), (0, 1)
    assert loss(seq_out(hs), seq_out(t([[[2.0, 0.0], [0.0, 1.0]]])))["fitnet"].item() == pytest.approx(0)
    assert loss(seq_out(hs), seq_out(torch.zeros(1, 2, 2)))["fitnet"].item() == pytest.approx((4 + 0 + 0 + 1) / 4)


def test_fitnet_same_width_still_learned_and_needs_widths():
    loss = FitNetLoss(LossConfig(), d_student=4, d_teacher=4)
    assert isinstance(loss.regressor, torch.nn.Linear)
    with torch.no_grad():
        loss.regressor.weight.copy_(torch.eye(4))
        loss.regressor.bias.zero_()
    h = torch.randn(2, 5, 4)
    assert loss(seq_out(h), seq_out(h))["fitnet"].item() == pytest.approx(0)
    with pytest.raises(ValueError, match="d_student and d_teacher"):
        FitNetLoss(LossConfig())


# --------------------------------------------------------------------------- RKD


def _last(rows) -> ModelOutput:
    """Embeddings as the final step of a length-1 sequence."""
    return seq_out(t(rows).unsqueeze(1))


def test_rkd_distance_hand_checked():
    # teacher 0, 1, 2: distances / mean (4/3) -> .75, 1.5, .75; student 0, 1, 3: / 2 -> .5, 1.5, 1
    terms = RKDLoss(RKDConfig())(_last([[0.0], [1.0], [3.0]]), _last([[0.0], [1.0], [2.0]]))
    assert terms["rkd_distance"].item() == pytest.approx(4 * 0.5 * 0.25**2 / 9, rel=1e-4)
    assert terms["rkd_angle"].item() == pytest.approx(0, abs=1e-7)  # collinear, same order: same angles


def test_rkd_angle_hand_checked():
    # teacher: right isosceles triangle (angles 90, 45, 45); student: equilateral (60, 60, 60)
    teacher = _last([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    student = _last([[0.0, 0.0], [1.0, 0.0], [0.5, math.sqrt(3) / 2]])
    terms = RKDLoss(RKDConfig())(student, teacher)
    c = math.sqrt(0.5)
    expected = (2 * 0.5 * 0.5**2 + 4 * 0.5 * (c - 0.5) ** 2) / 27  # 6 off-diagonal entries of [3, 3, 3]
    assert terms["rkd_angle"].item() == pytest.approx(expected, rel=1e-4)


def test_rkd_invariant_to_scale_shift_rotation_and_width():
    torch.manual_seed(4)
    et = torch.randn(6, 5)
    es = 3.0 * orthogonal_embed(et, 8) + 1.5
    terms = RKDLoss(RKDConfig())(seq_out(es.unsqueeze(1)), seq_out(et.unsqueeze(1)))
    assert terms["rkd_distance"].item() < 1e-8 and terms["rkd_angle"].item() < 1e-8
    terms = RKDLoss(RKDConfig())(seq_out(torch.randn(6, 1, 8)), seq_out(et.unsqueeze(1)))
    assert terms["rkd_distance"].item() > 1e-3 and terms["rkd_angle"].item() > 1e-3


def test_rkd_uses_the_last_step_and_small_batches():
    h = torch.randn(4, 3, 2)
    other = h.clone()
    other[:, :2] = torch.randn(4, 2, 2)  # earlier steps differ, the last one agrees
    assert all(v.item() < 1e-8 for v in RKDLoss(RKDConfig())(seq_out(other), seq_out(h)).values())
    one = RKDLoss(RKDConfig())(seq_out(torch.randn(1, 3, 2)), seq_out(torch.randn(1, 3, 4)))
    assert one["rkd_distance"].item() == 0.0 and one["rkd_angle"].item() == 0.0


# --------------------------------------------------------------------------- AT


def test_at_hand_checked():
    # teacher energy per step (1, 0) -> a = (1, 0); student (1, 1) -> (1, 1)/sqrt(2): |diff|^2 = 2 - sqrt(2)
    terms = ATLoss(ATConfig())(seq_out(t([[[1.0], [1.0]]])), seq_out(t([[[1.0], [0.0]]])))
    assert terms["at"].item() == pytest.approx(2 - math.sqrt(2), rel=1e-5)


def test_at_invariances_and_bounds():
    torch.manual_seed(5)
    ht = torch.randn(3, 8, 4)
    hs = torch.cat([ht, -ht], -1) * 5.0  # other width and scale, same per-step energy profile
    assert ATLoss(ATConfig())(seq_out(hs), seq_out(ht))["at"].item() < 1e-10
    value = ATLoss(ATConfig())(seq_out(torch.randn(3, 8, 2)), seq_out(ht))["at"].item()
    assert 0 < value <= 2
    # disjoint supports over time give the maximum, 2
    a, b = torch.zeros(1, 4, 1), torch.zeros(1, 4, 1)
    a[0, :2], b[0, 2:] = 1.0, 1.0
    assert ATLoss(ATConfig())(seq_out(a), seq_out(b))["at"].item() == pytest.approx(2.0)


# --------------------------------------------------------------------------- soft-DTW and DT2W


def brute_force_dp(cost: list[list[float]], gamma: float) -> float:
    n, m = len(cost), len(cost[0])
    r = [[math.inf] * (m + 1) for _ in range(n + 1)]
    r[0][0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            prev = [r[i - 1][j - 1], r[i - 1][j], r[i][j - 1]]
            lo = min(prev)
            softmin = lo - gamma * math.log(sum(math.exp(-(p - lo) / gamma) for p in prev if p < math.inf))
            r[i][j] = cost[i - 1][j - 1] + softmin
    return r[n][m]


def alignment_paths(n: int, m: int):
    """Every monotone path from (0, 0) to (n-1, m-1) with steps (1,0), (0,1), (1,1)."""
    def walk(i, j, path):
        if (i, j) == (n - 1, m - 1):
            yield path
            return
        for di, dj in ((1, 0), (0, 1), (1, 1)):
            if i + di < n and j + dj < m:
                yield from walk(i + di, j + dj, path + [(i + di, j + dj)])
    yield from walk(0, 0, [(0, 0)])


@pytest.mark.parametrize("n, m, gamma", [(1, 1, 0.5), (2, 3, 1.0), (3, 3, 0.1), (4, 2, 2.0), (3, 5, 0.3)])
def test_soft_dtw_matches_brute_force_dp(n, m, gamma):
    cost = torch.rand(2, n, m, generator=torch.Generator().manual_seed(n * 10 + m), dtype=torch.float64)
    got = soft_dtw(cost, gamma)
    for b in range(2):
        assert got[b].item() == pytest.approx(brute_force_dp(cost[b].tolist(), gamma), rel=1e-10, abs=1e-12)


def test_soft_dtw_value_and_gradient_by_path_enumeration():
    """sdtw = -γ log Σ_paths exp(-cost(path)/γ); its gradient is the expected alignment."""
    gamma = 0.7
    cost = torch.rand(1, 3, 4, generator=torch.Generator().manual_seed(7), dtype=torch.float64, requires_grad=True)
    paths = list(alignment_paths(3, 4))
    assert len(paths) == 25  # Delannoy number D(2, 3)
    path_costs = torch.stack([sum(cost[0, i, j] for i, j in p) for p in paths])
    expected = -gamma * torch.logsumexp(-path_costs / gamma, 0)
    got = soft_dtw(cost, gamma)[0]
    assert got.item() == pytest.approx(expected.item(), rel=1e-10)
    (grad,) = torch.autograd.grad(got, cost)
    weights = torch.softmax(-path_costs.detach() / gamma, 0)
    alignment = torch.zeros(3, 4, dtype=torch.float64)
    for w, p in zip(weights, paths):
        for i, j in p:
            alignment[i, j] += w
    torch.testing.assert_close(grad[0], alignment)


@pytest.mark.parametrize("n, m", [(3, 4), (5, 2), (1, 4), (1, 1)])
def test_soft_dtw_gradcheck(n, m):
    cost = torch.rand(2, n, m, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda c: soft_dtw(c, 0.5), (cost,))


def test_soft_dtw_hard_limit():
    # γ -> 0: the hard DTW value (best path), here the diagonal of an identity-like cost
    hard = t([[[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]]).double()
    assert soft_dtw(hard, 1e-3).item() == pytest.approx(0.0, abs=1e-2)
    with pytest.raises(ValueError, match="gamma"):
        soft_dtw(hard, 0.0)


def test_pairwise_cost():
    x, y = t([[[0.0, 0.0], [1.0, 1.0]]]), t([[[1.0, 3.0]]])
    torch.testing.assert_close(pairwise_cost(x, y), t([[[5.0], [2.0]]]))  # mean of squares over 2 dims


def test_dt2w_values_projection_and_divergence():
    torch.manual_seed(6)
    h = torch.randn(2, 6, 3)
    same_width = DT2WLoss(DT2WConfig(), d_student=3, d_teacher=3)
    assert isinstance(same_width.projection, torch.nn.Identity)
    expected = soft_dtw(pairwise_cost(h, h), 0.1).mean() / 6
    assert same_width(seq_out(h), seq_out(h))["dt2w"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert expected.item() < 0  # plain soft-DTW of equal sequences is below 0 (the softmin bonus)
    div = DT2WLoss(DT2WConfig(mode="divergence"), d_student=3, d_teacher=3)
    assert div(seq_out(h), seq_out(h))["dt2w"].item() == pytest.approx(0, abs=1e-6)
    assert div(seq_out(torch.randn(2, 6, 3)), seq_out(h))["dt2w"].item() > 0
    wide = DT2WLoss(DT2WConfig(), d_student=3, d_teacher=5)
    assert tuple(wide.projection.weight.shape) == (5, 3)  # Linear(d_student -> d_teacher)
    with pytest.raises(ConfigError, match="mode"):
        build_loss("dt2w", {"mode": "hard"}, d_student=3, d_teacher=3)


def test_dt2w_prefers_the_aligned_sequence():
    """A time-shifted copy is closer under soft-DTW than an unrelated sequence of the same energy."""
    steps = torch.linspace(0, 6.28, 20)
    teacher = torch.sin(steps).view(1, 20, 1)
    shifted = torch.sin(steps - 0.6).view(1, 20, 1)
    unrelated = torch.sin(3 * steps).view(1, 20, 1)
    loss = DT2WLoss(DT2WConfig(gamma=0.01), d_student=1, d_teacher=1)
    assert loss(seq_out(shifted), seq_out(teacher))["dt2w"] < loss(seq_out(unrelated), seq_out(teacher))["dt2w"]


def test_all_losses_with_real_lstm_shapes():
    """Teacher 100-wide, student 8-wide, L = 100: every loss runs and returns finite terms."""
    import tdml.models.lstm  # noqa: F401
    from tdml.models.base import Dims, build_model

    dims = Dims(seq_len=100, n_channels=1, n_classes=3)
    torch.manual_seed(8)
    teacher, student = build_model("lstm_teacher", dims), build_model("lstm_student", dims)
    x, y = torch.randn(8, 100, 1), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    with torch.no_grad():
        t_out = ModelOutput(*teacher.forward_features(x))
    s_out = ModelOutput(*student.forward_features(x))
    for name in NAMES:
        loss = build_loss(name, {}, d_student=8, d_teacher=100)
        terms = loss(s_out, t_out, y)
        assert terms and all(torch.isfinite(v) for v in terms.values()), name
