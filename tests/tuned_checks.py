"""Checks shared by the tests of every task's shipped equal-effort results
(test_tlg_tuned_tables.py, test_vls_tuned_tables.py): the choice follows from the stored
validation scores by the protocol's rule with an equal budget per row, and the tuned table's
runs trained at the chosen size and rate."""

from __future__ import annotations

import math
from typing import Any

import pytest

from readpvla import experiment as ex
from readpvla.experiment import tuning


def check_choice(sel: dict[str, Any]) -> None:
    """The stored choice is what :func:`tuning.selection` makes of the stored scores (per-domain
    scores, where stored, average to the candidate's score), and every row had the same budget."""
    scores = {}
    for c in sel["candidates"]:
        assert math.isfinite(c["val"])
        if "per_domain" in c:
            per_domain = c["per_domain"]
            assert sorted(per_domain) == sorted(sel["domains"])
            assert all(math.isfinite(v) for v in per_domain.values())
            assert c["val"] == pytest.approx(sum(per_domain.values()) / len(per_domain),
                                             abs=1e-4)
            score = sum(per_domain.values()) / len(per_domain)
        else:
            score = c["val"]
        scores[tuning.Candidate(c["row"], c["row"], c["size"], c["factor"])] = score
    again = tuning.selection(scores, lambda c: c.row, lambda c: 0.0)
    assert {r: (c["size"], c["factor"]) for r, c in sel["chosen"].items()} == {
        r: (c["size"], c["factor"]) for r, c in again["chosen"].items()}
    assert sel["best_per_size"] == again["best_per_size"]
    assert len(set(sel["budget"].values())) == 1, f"unequal tuning budgets: {sel['budget']}"


def check_tuned_table(sel: dict[str, Any], payload: dict[str, Any], markdown: str
                      ) -> dict[str, str]:
    """The tuned table follows from its runs, which trained at the chosen sizes and rates.
    Returns ``{row: the variant the protocol chose}``."""
    ex.verify_table(payload, markdown)
    variant_of = {row: c["variant"] for row, c in sel["chosen"].items()}
    lr_of = {c["variant"]: c["lr"] for c in sel["chosen"].values()}
    assert {r["row"] for r in payload["runs"]} == set(lr_of)
    for r in payload["runs"]:
        assert r["lr"] == pytest.approx(lr_of[r["row"]], rel=1e-9)
    return variant_of
