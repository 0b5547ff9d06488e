"""Mixture design from Python: the statistics of `tokenlake mix design | fit | propose` on
weights and losses you hold (the command line works on recipe files and runs.csv).

    import tokenlake
    runs = tokenlake.mix.design([0.45, 0.35, 0.2], runs=24, seed=3)      # weight vectors
    fit = tokenlake.mix.fit(["en", "zh", "code"], runs, losses)          # after training each
    # or Ziya2's law, from each component's (CH, RA, SIM) and the tokens of each run:
    # tokenlake.mix.fit(names, runs, losses, law="ziya2", tokens=[...], attributes={...})
    # or straight from the files of `tokenlake mix design`, their losses filled in:
    # tokenlake.mix.fit(**tokenlake.mix.read_runs("design/runs.csv"), law="ziya2")
    summary = tokenlake.Lake("./lake").plan(recipe_text)                 # unique tokens per component
    unique = {c["name"]: c["tokens"] for c in summary["components"]}
    best = tokenlake.mix.propose(fit, tokens=1e9, unique_tokens=unique)  # best["weights"]
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from . import errors


def _call(f: Any, *args: Any) -> Any:
    from ._native import NativeError

    try:
        return f(*args)
    except NativeError as e:
        raise errors.from_native(e) from None


def design(
    base: Sequence[float],
    runs: int,
    concentration: float = 20.0,
    seed: int = 0,
    kind: str = "dirichlet",
) -> List[List[float]]:
    """`runs` weight vectors around `base` (normalised): `kind` "dirichlet" draws them from a
    seeded Dirichlet, "space-filling" spreads them evenly over the same region;
    `concentration` says how close they stay. The same seed gives the same design."""
    from . import _native

    return _call(_native.mix_design, [float(w) for w in base], int(runs), float(concentration), int(seed), kind)


def _in_order(names: List[str], values: Any, what: str) -> Optional[List[Any]]:
    """`values` as a list in `names`' order: from a mapping by name, or a sequence as given."""
    if values is None:
        return None
    if isinstance(values, Mapping):
        missing = [n for n in names if n not in values]
        if missing:
            raise errors.InvalidArgument(f"{what} has no entry for {', '.join(missing)}")
        return [values[n] for n in names]
    return list(values)


def read_runs(runs_csv: Any, design: Any = "beside") -> Dict[str, Any]:
    """The runs of a `runs.csv` of `tokenlake mix design`, its loss column filled in, as the
    arguments of `fit`: `fit(**read_runs("design/runs.csv"), law="ziya2")`. `design`: the
    design.json whose attributes (and single budget) to add; "beside" takes the one next to
    the runs file where there is one, None none."""
    from . import _native

    path = os.fspath(runs_csv)
    if design == "beside":
        beside = os.path.join(os.path.dirname(os.path.abspath(path)), "design.json")
        design = beside if os.path.exists(beside) else None
    read = json.loads(_call(_native.mix_read_runs, path, None if design is None else os.fspath(design)))
    return {k: v for k, v in read.items() if v is not None}


def fit(
    components: Sequence[str],
    weights: Sequence[Sequence[float]],
    losses: Sequence[float],
    law: str = "data-mixing",
    tokens: Optional[Sequence[float]] = None,
    attributes: Optional[Union[Mapping[str, Sequence[float]], Sequence[Sequence[float]]]] = None,
) -> Dict[str, Any]:
    """How loss depends on the weights: `law` "data-mixing" (L = c + exp(Σ tⱼ rⱼ)), "regmix"
    (L = Σ βⱼ rⱼ) or "ziya2" (L = D^−α + E, D = Σⱼ Vⱼ (A·CHⱼ + B·RAⱼ + C·SIMⱼ) + F), which
    needs the tokens each run trained on and each component's (CH, RA, SIM) — by name, or a
    list in the components' order. Returns what `tokenlake mix fit --json` prints: params,
    rmse, cv_relative_error (5-fold held out), covered (each component's weight range)."""
    from . import _native

    names = list(components)
    rows = [[float(x) for x in w] for w in weights]
    attrs = _in_order(names, attributes, "attributes")
    return json.loads(
        _call(
            _native.mix_fit,
            law,
            names,
            rows,
            [float(l) for l in losses],
            None if tokens is None else [float(t) for t in tokens],
            None if attrs is None else [tuple(float(x) for x in a) for a in attrs],
        )
    )


def propose(
    fit: Mapping[str, Any],
    tokens: float,
    unique_tokens: Optional[Union[Mapping[str, float], Sequence[Optional[float]]]] = None,
    max_epochs: float = 4.0,
    min_share: float = 0.0,
    max_share: float = 1.0,
    other_tokens: Optional[Union[Mapping[str, float], Sequence[float]]] = None,
) -> Dict[str, Any]:
    """The weights of least predicted loss for `tokens` of training: within the range the
    design covered, the shares, and `max_epochs` of each component's unique tokens (a mapping by
    name, or a list in the fit's order; None: never repeated), repeated tokens discounted.
    `other_tokens`: the tokens of each component the recipe's other stages train on, which
    count towards its epochs. Returns weights, predicted_loss, epochs and each component's
    bounds with why."""
    from . import _native

    names = list(fit["components"])
    if unique_tokens is None:
        unique: List[Optional[float]] = [None] * len(names)
    elif isinstance(unique_tokens, Mapping):
        unique = [None if unique_tokens.get(n) is None else float(unique_tokens[n]) for n in names]
    else:
        unique = [None if u is None else float(u) for u in unique_tokens]
    if isinstance(other_tokens, Mapping):
        others: Optional[List[float]] = [float(other_tokens.get(n, 0.0)) for n in names]
    else:
        others = None if other_tokens is None else [float(t) for t in other_tokens]
    return json.loads(
        _call(_native.mix_propose, json.dumps(dict(fit)), float(tokens), unique, float(max_epochs),
              float(min_share), float(max_share), others)
    )
