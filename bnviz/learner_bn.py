"""Loading a learner's own BatchNorm for `bnviz check-bn`: the file, the class, the
constructor convention it follows (d2l's `(num_features, num_dims)` or PyTorch's
`(num_features)`) and the names it gives gamma, beta and the running statistics.

It imports and runs the learner's code, so it is local only: `load_class` refuses on a hosted
server (BNVIZ_HOSTED=1). bnviz.check_bn holds the checks.
"""
from __future__ import annotations

import functools
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

C = 4  # channels (conv) or features (FC) of every instance built and checked


class CheckError(Exception):
    """Unusable input: the file, the class, its constructor or its forward. One line."""


def one_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0]}" if msg else type(e).__name__


def load_class(spec: str) -> Callable:
    """The class (or factory) `Name` from "path/to/file.py:Name", importing the file as a
    module not named __main__ (so its `if __name__ == "__main__":` block does not run), with
    its folder on sys.path for its own imports. Raises CheckError with one line."""
    if os.environ.get("BNVIZ_HOSTED") == "1":
        raise CheckError("check-bn runs the code it is given, so it is local only: it is off on "
                         "a hosted server (BNVIZ_HOSTED=1)")
    path_s, sep, name = spec.rpartition(":")
    if not sep or not path_s or not name:
        raise CheckError(f"expected path/to/file.py:ClassName, got {spec!r}")
    path = Path(path_s)
    if not path.is_file():
        raise CheckError(f"no such file: {path}")
    mod_name = f"bnviz_check_{abs(hash(str(path.resolve())))}"
    loc = importlib.util.spec_from_file_location(mod_name, path)
    if loc is None or loc.loader is None:
        raise CheckError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(loc)
    sys.modules[mod_name] = module  # as importlib's recipe does: @dataclass looks it up
    sys.path.insert(0, str(path.resolve().parent))
    try:
        loc.loader.exec_module(module)
    except (Exception, SystemExit) as e:  # the learner's file: anything can go wrong
        del sys.modules[mod_name]
        raise CheckError(f"{path} does not import: {one_line(e)}") from None
    finally:
        sys.path.remove(str(path.resolve().parent))
    try:
        obj = functools.reduce(getattr, name.split("."), module)
    except AttributeError:
        have = sorted(k for k, v in vars(module).items()
                      if isinstance(v, type) and issubclass(v, nn.Module)
                      and not v.__module__.startswith("torch"))
        raise CheckError(f"{path} has no {name!r}" + (
            f"; its nn.Module classes: {', '.join(have)}" if have else
            "; it defines no nn.Module class")) from None
    if not callable(obj):
        raise CheckError(f"{name} in {path} is not a class or a function")
    return obj


# --- building the learner's module -------------------------------------------------------

def _conventions(factory: Callable) -> list[tuple[str, Callable[[int], nn.Module]]]:
    """The constructor calls to try, the likelier first: d2l's (num_features, num_dims) when
    the signature names num_dims or needs two arguments, else PyTorch's (num_features) — so
    nn.BatchNorm1d(4, 2) (eps = 2!) is never tried before nn.BatchNorm1d(4)."""
    name = getattr(factory, "__name__", "factory")
    d2l = (f"{name}(num_features, num_dims), d2l's convention", lambda nd: factory(C, nd))
    pt = (f"{name}(num_features), PyTorch's convention", lambda nd: factory(C))
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return [d2l, pt]
    names = [p.name for p in params]
    required = [p for p in params if p.default is p.empty and p.kind in (
        p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return [d2l, pt] if "num_dims" in names or len(required) >= 2 else [pt, d2l]


def build_learner(factory: Callable) -> tuple[str, Callable[[int], nn.Module], nn.Module]:
    """The first constructor convention that builds an nn.Module for FC (or conv), and
    that module."""
    name = getattr(factory, "__name__", "factory")
    tried = []
    for label, make in _conventions(factory):
        for nd in (2, 4):
            call = f"{name}({C}, {nd})" if "num_dims" in label else f"{name}({C})"
            try:
                m = make(nd)
            except Exception as e:
                if f"{call}: {one_line(e)}" not in tried:
                    tried.append(f"{call}: {one_line(e)}")
                continue
            if isinstance(m, nn.Module):
                return label, make, m
            tried.append(f"{call} returned {type(m).__name__}, not an nn.Module")
            break
    raise CheckError("cannot construct it: " + "; ".join(tried))


# --- finding its parameters and statistics -------------------------------------------------

@dataclass
class Names:
    gamma: str | None
    beta: str | None
    mean: str | None
    var: str | None
    kinds: dict[str, str]  # attribute -> Parameter / buffer / plain tensor attribute


def _pick(cands, words, init, taken=()) -> str | None:
    for n, _ in cands:
        if n not in taken and any(w in n.split(".")[-1].lower() for w in words):
            return n
    for n, t in cands:
        if n not in taken and torch.all(t.detach() == init):
            return n
    return None


def find_names(m: nn.Module) -> Names:
    params = [(n, p) for n, p in m.named_parameters() if p.numel() == C]
    bufs = [(n, b) for n, b in m.named_buffers() if b.numel() == C]
    plain = [(k, v) for k, v in vars(m).items() if not k.startswith("_") and
             isinstance(v, torch.Tensor) and not isinstance(v, nn.Parameter) and v.numel() == C]
    kinds = {n: "Parameter" for n, _ in params} | {n: "buffer" for n, _ in bufs} | {
        n: "plain tensor attribute, not a buffer" for n, _ in plain}
    gamma = _pick(params, ("weight", "gamma", "scale"), 1.0)
    beta = _pick(params, ("bias", "beta", "shift"), 0.0, (gamma,))
    stats = bufs + plain
    mean = _pick(stats, ("mean", "mu"), 0.0)
    var = _pick(stats, ("var", "sigma", "std"), 1.0, (mean,))
    return Names(gamma, beta, mean, var, kinds)


def get_tensor(m: nn.Module, name: str) -> torch.Tensor:
    return functools.reduce(getattr, name.split("."), m)


def set_tensor(m: nn.Module, name: str | None, value: torch.Tensor) -> None:
    if name is not None:
        with torch.no_grad():
            t = get_tensor(m, name)
            t.copy_(value.reshape(t.shape))
