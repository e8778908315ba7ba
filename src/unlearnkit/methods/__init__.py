"""Unlearning methods: one file per method, one signature, one registry.

Run a method with :func:`unlearn`::

    from unlearnkit.methods import unlearn, methods_table
    result = unlearn("salun", model, split, profile="cpu", device="auto", seed=0, lr=0.05)
    result.model, result.seconds, result.config

Adding a method is one file in this folder with one decorated function (see
:mod:`unlearnkit.methods.base`); every module here is imported when the package is, so the
decorator registers it.
"""

import importlib
import pkgutil

from .base import (METHODS, Diverged, MethodConfig, MethodSpec, RunContext, SGDConfig, UnlearnResult,
                   available_methods, get_method, has_retain, method_defaults, methods_table, param,
                   register, unlearn)

# The baselines first, in the order a methods table reads best; then any other module here.
_BASELINES = ("retrain", "finetune", "neggrad", "random_labels", "salun", "l1_sparse", "scrub",
              "bad_teacher", "unsir", "cf_k")
_OTHERS = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in (*_BASELINES, "base"))
for _module in (*_BASELINES, *_OTHERS):
    importlib.import_module(f"{__name__}.{_module}")

__all__ = ["METHODS", "Diverged", "MethodConfig", "MethodSpec", "RunContext", "SGDConfig", "UnlearnResult",
           "available_methods", "get_method", "has_retain", "method_defaults", "methods_table",
           "param", "register", "unlearn"]
