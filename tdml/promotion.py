"""Champion / challenger: the one gate that decides whether an alias moves to a new version.

Every registered version first gets the alias ``challenger``; ``champion`` (or whichever alias
the run names) moves to it only when

- the model has no holder of that alias yet, or
- the user forces it (``tracking.promote=always``), or
- the new version is better on validation than the holder, *under the same data settings*
  (versions registered from different data settings are not compared, and the holder stays).

``train_teacher``, ``distill`` and ``tune``'s final runs all go through ``gate``; each decision
is logged on the run (tags, metrics, ``promotion.json``) and on the version (tags).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import Any

from tdml import tracking
from tdml.tasks import Mode, better

log = logging.getLogger(__name__)

CHALLENGER = "challenger"
CHALLENGER_TAG = "tdml.challenger"
DATA_TAG = "tdml.data_settings"
# data settings that change what a validation score means (batch size does not)
COMPARED_DATA = ("dataset", "data_path", "seq_len", "pred_len", "split")


@dataclass
class Decision:
    promoted: bool
    reason: str
    registered_name: str
    alias: str
    candidate_version: str
    metric: str
    candidate_value: float
    champion_version: str | None = None
    champion_value: float | None = None


def data_settings(data_config: dict[str, Any]) -> str:
    """The data settings a version's score depends on, as the JSON tag versions carry."""
    return json.dumps({k: data_config.get(k) for k in COMPARED_DATA}, sort_keys=True)


def gate(name: str, version: str, value: float, metric: str, mode: Mode, alias: str = "champion",
         policy: str = "if_better") -> Decision:
    """Decide (and apply) whether ``alias`` of ``name`` moves to ``version`` scored ``value``.

    ``metric`` names the candidate's run metric (e.g. ``best_val_mse``) that the holder's run is
    read for; ``policy`` is ``if_better`` (the gate), ``always`` (forced) or ``never``. Data
    settings are read from both versions' ``tdml.data_settings`` tags (``tracking.log_model``).
    """
    tracking.set_version_tags(name, version, {CHALLENGER_TAG: "true"})
    tracking.set_alias(name, CHALLENGER, version)
    settings = (tracking.model_version(name, version).tags or {}).get(DATA_TAG)
    current = tracking.current_alias_version(name, alias)
    cur_value = None
    if current is not None and current.version == version:
        promoted, reason = True, f"v{version} already holds @{alias}"
    elif policy == "never":
        promoted, reason = False, f"promotion disabled (tracking.promote=never); v{version} is @{CHALLENGER}"
    elif current is None:
        promoted, reason = True, f"{name} had no @{alias} yet"
    elif policy == "always":
        promoted, reason = True, f"forced (tracking.promote=always) over @{alias} v{current.version}"
    else:
        cur_settings = (current.tags or {}).get(DATA_TAG)
        cur_value = tracking.run_metrics(current.run_id).get(metric) if current.run_id else None
        if settings and cur_settings and cur_settings != settings:
            promoted, reason = False, (f"not compared: @{alias} v{current.version} was trained on other data "
                                       f"settings ({cur_settings} vs {settings}); kept it - force with "
                                       f"tracking.promote=always")
        elif cur_value is None:
            promoted, reason = False, (f"@{alias} v{current.version} has no {metric} to compare; kept it - "
                                       f"force with tracking.promote=always")
        else:
            promoted = better(value, cur_value, mode)
            reason = (f"v{version} {metric}={value:.6g} {'beats' if promoted else 'does not beat'} "
                      f"@{alias} v{current.version} {metric}={cur_value:.6g} ({mode})")
    if promoted:
        tracking.set_alias(name, alias, version)
    decision = Decision(promoted, reason, name, alias, version, metric, value,
                        current.version if current else None, cur_value)
    _record(decision)
    return decision


def _record(d: Decision) -> None:
    verdict = "promoted" if d.promoted else "kept"
    tracking.set_version_tags(d.registered_name, d.candidate_version,
                              {"tdml.promotion": "promoted" if d.promoted else "rejected",
                               "tdml.promotion_reason": d.reason})
    tracking.set_tags({"tdml.promotion": verdict, "tdml.promotion_reason": d.reason})
    tracking.log_metrics({"promotion_candidate_value": d.candidate_value, "promotion_promoted": float(d.promoted),
                          **({"promotion_champion_value": d.champion_value} if d.champion_value is not None else {})})
    tracking.log_dict(asdict(d), "promotion.json")
    log.info("promotion: %s", d.reason)
