"""The papers' numbers the book quotes, with their sources: one data file, ``facts.csv``.

Every scorecard row names a fact id (:meth:`unlearnkit.record.Recorder.score`); the book's
appendix renders the file. Columns: ``id``, ``paper`` (bib key, or ``project`` for the project's
own targets), ``source`` (arXiv identifier and version, or the code whose output is quoted),
``where`` (table, figure or section), ``value`` (empty: the source states the claim without a
number), ``unit``, ``basis`` (``paper``, ``code output``, ``derived from the paper's row``,
``unverified``, ...), ``setting`` (where the number was measured: ``dataset · model[ · code]``;
empty where the fact is a target, a direction or a check of ours), ``note``.

A scorecard row against a fact with a setting must name its own (:meth:`unlearnkit.record.Recorder.score`):
a number from another setting is context, never a match.
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FACTS_FILE = Path(__file__).with_name("facts.csv")


@dataclass(frozen=True)
class Fact:
    id: str
    paper: str
    source: str
    where: str
    value: Any
    unit: str
    basis: str
    setting: str
    note: str

    @property
    def verified(self) -> bool:
        """False when the number was not found in the paper or its code (``basis`` "unverified")."""
        return self.basis != "unverified"

    @property
    def citation(self) -> str:
        """``source, where``: what a scorecard row prints as its source."""
        return f"{self.source}, {self.where}"


def _parse(text: str) -> Any:
    """A CSV cell as a value: empty → None, true / false → bool, a number → int or float, else the text."""
    if text == "":
        return None
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


@functools.lru_cache(maxsize=1)
def all_facts() -> dict[str, Fact]:
    """Every fact of ``facts.csv`` by id (ids are unique)."""
    facts: dict[str, Fact] = {}
    with FACTS_FILE.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["id"] in facts:
                raise ValueError(f"{FACTS_FILE.name}: fact id {row['id']!r} appears twice")
            facts[row["id"]] = Fact(**{**row, "value": _parse(row["value"])})
    return facts


def fact(fact_id: str) -> Fact:
    """The fact ``fact_id``; an unknown id raises, listing the ids that share its prefix."""
    facts = all_facts()
    if fact_id not in facts:
        prefix = fact_id.split(".")[0]
        near = sorted(k for k in facts if k.startswith(prefix + ".")) or sorted(facts)
        raise KeyError(f"unknown fact id {fact_id!r}; known ids starting with {prefix!r}: {near}")
    return facts[fact_id]


def value(fact_id: str) -> Any:
    """The value of fact ``fact_id`` (None where the source gives no number)."""
    return fact(fact_id).value
