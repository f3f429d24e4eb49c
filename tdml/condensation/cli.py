"""What ``tdml condense`` prints: the evaluation table of a condense run's summary."""

from __future__ import annotations


def summary_table(s) -> str:
    m = s.metrics
    split = "val" if "test_mse" not in m else "test"
    lines = [f"condense run {s.run_id} ({s.method}); experts {s.experts_run_id or '-'}"
             f"{' (reused)' if s.experts_reused else ''}",
             "| trained on | model | " + f"{split} MSE (mean ± std) | {split} MAE (mean ± std) |",
             "|---|---|---:|---:|"]
    models = list(dict.fromkeys(r.model for r in s.extra["rows"]))
    for prefix, label in (("", s.method), ("random_", "random real subset")):
        for model in models:
            k = f"{prefix}{split}_mse_{model}"
            if k in m:
                lines.append(f"| {label} | {model} | {m[k]:.4f} ± {m[f'{prefix}{split}_mse_std_{model}']:.4f} | "
                             f"{m[f'{prefix}{split}_mae_{model}']:.4f} ± {m[f'{prefix}{split}_mae_std_{model}']:.4f} |")
    lines.append(f"synthetic set: runs:/{s.run_id}/synthetic")
    return "\n".join(lines)
