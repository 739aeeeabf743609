"""`check_batchnorm`: a learner's own BatchNorm held against nn.BatchNorm1d/2d, with numbers.

It runs the learner's code, so it is local only: the dashboard never runs uploaded or pasted
code, and `load_class` refuses on a hosted server (BNVIZ_HOSTED=1).

What it compares, each on a fresh instance and the same seeded inputs (4 channels: one plain,
one offset and wide, one of tiny variance 1e-6 — below eps, so a missing or misplaced eps shows
— and one offset the other way): outputs in training and in eval mode for FC (N, D) and conv
(N, C, H, W) shapes; how the running statistics move (the weight of the new batch, so the
momentum convention, and biased or unbiased running variance); whether they survive a
DataParallel-style replica (bnviz.norms.dp_replica); batch size 1; gradients of input, gamma
and beta against autograd through nn.BatchNorm.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from bnviz.learner_bn import (C, CheckError, Names, build_learner, find_names, get_tensor,
                              load_class, one_line, set_tensor)
from bnviz.norms import dp_replica

SHAPES = {"FC": (8, C), "conv": (4, C, 5, 5)}
TOL = 1e-4  # relative to max(1, |reference|): float32 round-off is ~1e-6
NN_MOMENTUM = 0.1


@dataclass
class Finding:
    check: str  # what was compared, e.g. "train output, conv (4, 4, 5, 5)"
    ok: bool
    detail: str  # the numbers, in words
    diff: float | None = None  # largest difference found (relative to max(1, |reference|))


@dataclass
class Report:
    target: str
    constructor: str  # the signature that worked
    names: dict[str, str]  # gamma, beta, running_mean, running_var -> "attribute (kind)"
    momentum: float | None = None  # measured weight of the new batch (nn.BatchNorm: 0.1)
    convention: str = ""
    running_var: str = ""  # "unbiased", "biased" or a sentence
    replica_keeps_stats: bool | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    def failed(self) -> list[str]:
        return [f.check for f in self.findings if not f.ok]

    def text(self) -> str:
        lines = [f"check-bn {self.target}", f"constructed as {self.constructor}",
                 "names: " + ", ".join(f"{k} = {v}" for k, v in self.names.items())]
        if self.convention:
            lines.append(f"momentum: {self.convention}")
        if self.running_var:
            lines.append(f"running variance: {self.running_var}")
        width = max(len(f.check) for f in self.findings)
        for f in self.findings:
            lines.append(f"  {'ok  ' if f.ok else 'DIFF'}  {f.check:<{width}}  {f.detail}")
        n_ok = sum(f.ok for f in self.findings)
        lines.append(f"{n_ok} of {len(self.findings)} checks agree with nn.BatchNorm"
                     + ("" if self.ok else f". Differs: {'; '.join(self.failed())}"))
        return "\n".join(lines)


def _flat(t) -> torch.Tensor:
    return t.detach().reshape(-1).clone()


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a.detach().reshape(ref.shape) - ref.detach()).abs().max()
                 / max(1.0, float(ref.detach().abs().max())))


# --- the checks ----------------------------------------------------------------------------

class _Case:
    """One shape: seeded inputs, gamma/beta/statistics values, and fresh pairs of modules."""

    def __init__(self, label: str, shape: tuple[int, ...], make, names: Names, seed: int):
        self.label, self.shape, self.make, self.names = label, shape, make, names
        self.nd = len(shape)
        self.axes = (0,) if self.nd == 2 else (0, 2, 3)
        self.view = (1, C) if self.nd == 2 else (1, C, 1, 1)
        g = torch.Generator().manual_seed(seed)
        scale = torch.tensor([1.0, 2.0, 1e-3, 0.5]).view(self.view)
        shift = torch.tensor([0.0, 3.0, 0.0, -2.0]).view(self.view)
        self.xs = [torch.randn(shape, generator=g) * scale + shift for _ in range(4)]
        self.gamma = 1 + 0.5 * torch.randn(C, generator=g)
        self.beta = 0.5 * torch.randn(C, generator=g)
        self.stat_mean = torch.randn(C, generator=g)
        self.stat_var = 0.5 + torch.rand(C, generator=g)
        self.w = torch.randn(shape, generator=g)  # loss weights: sum(y) alone has no dx

    def pair(self) -> tuple[nn.Module, nn.Module]:
        """A fresh instance of theirs and of nn's, with the same (not 1 and 0) gamma and beta,
        so a scale or shift applied wrongly shows."""
        mine = self.make(self.nd)
        ref = (nn.BatchNorm1d if self.nd == 2 else nn.BatchNorm2d)(C)
        set_tensor(mine, self.names.gamma, self.gamma)
        set_tensor(mine, self.names.beta, self.beta)
        set_tensor(ref, "weight", self.gamma)
        set_tensor(ref, "bias", self.beta)
        return mine, ref

    def stats(self, m: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        return _flat(get_tensor(m, self.names.mean)), _flat(get_tensor(m, self.names.var))

    def n(self) -> int:
        return self.shape[0] * (1 if self.nd == 2 else self.shape[2] * self.shape[3])


def _diagnose(case: _Case, x: torch.Tensor, y: torch.Tensor, mine: nn.Module) -> str:
    """Which common mistake reproduces the learner's training output, if one does."""
    g, b = case.gamma.view(case.view), case.beta.view(case.view)
    eps = 1e-5
    n = case.n()

    def out(axes, unbiased=False, eps_=eps, on_std=False, affine=True):
        m = x.mean(dim=axes, keepdim=True)
        v = ((x - m) ** 2).mean(dim=axes, keepdim=True) * (n / (n - 1) if unbiased else 1)
        xh = (x - m) / (v.sqrt() + eps_ if on_std else (v + eps_).sqrt())
        return g * xh + b if affine else xh

    cands = [("no eps: it divides by sqrt(var), not sqrt(var + eps)", out(case.axes, eps_=0.0)),
             ("eps added to the standard deviation, not the variance",
              out(case.axes, on_std=True)),
             ("the unbiased variance (÷ n−1) in the normalisation; nn.BatchNorm normalises "
              "with the biased one (÷ n)", out(case.axes, unbiased=True)),
             ("gamma and beta not applied", out(case.axes, affine=False))]
    their_eps = getattr(mine, "eps", None)
    if isinstance(their_eps, float) and their_eps != eps:
        cands.append((f"eps = {their_eps:g} (nn.BatchNorm: 1e-05)", out(case.axes, eps_=their_eps)))
    if case.nd == 4:
        cands += [("statistics over N only (one per channel AND position); nn.BatchNorm2d "
                   "takes one per channel over N, H and W", out((0,))),
                  ("variance over N only while the mean is over N, H, W",
                   g * (x - x.mean((0, 2, 3), keepdim=True)) / (
                       ((x - x.mean((0, 2, 3), keepdim=True)) ** 2).mean(0, keepdim=True)
                       + eps).sqrt() + b)]
    cands.append(("statistics over each example (the features), not over the batch",
                  out(tuple(range(1, case.nd)))))
    for text, cand in cands:
        if _rel(y, cand) < TOL:
            return "; matches " + text
    return ""


def _train_output(case: _Case) -> Finding:
    mine, ref = case.pair()
    mine.train(), ref.train()
    x = case.xs[0]
    y, r = mine(x), ref(x)
    d = _rel(y, r)
    why = "" if d < TOL else _diagnose(case, x, y, mine)
    return Finding(f"train output, {case.label}", d < TOL,
                   f"max |Δ| {d:.1e} vs {type(ref).__name__}{why}", d)


def _eval_output(case: _Case) -> Finding:
    """Eval mode with the same running statistics written into both: uses them, not the
    batch's, and leaves them alone."""
    mine, ref = case.pair()
    found = case.names.mean is not None and case.names.var is not None
    if found:  # else both keep their initial statistics (nn's: 0 and 1)
        set_tensor(mine, case.names.mean, case.stat_mean)
        set_tensor(mine, case.names.var, case.stat_var)
        set_tensor(ref, "running_mean", case.stat_mean)
        set_tensor(ref, "running_var", case.stat_var)
    mine.eval(), ref.eval()
    x = case.xs[1]
    with torch.no_grad():
        y, r = mine(x), ref(x)
    d = _rel(y, r)
    moved = max(_rel(s, t) for s, t in zip(case.stats(mine), (
        case.stat_mean, case.stat_var))) if found else 0.0
    detail = f"max |Δ| {d:.1e} " + ("with the same running statistics set in both" if found
                                    else "from fresh instances")
    if moved > TOL:
        detail += f"; eval mode changed the running statistics (by up to {moved:.1e})"
    elif d >= TOL and _rel(y, mine.train()(x)) < TOL:
        detail += "; eval mode normalises with the batch's statistics, not the running ones"
    return Finding(f"eval output, {case.label}", d < TOL and moved <= TOL, detail, d)


def _training_step():
    """A training step's forward: autograd on, as in training. The book's module takes the
    training path only where `torch.is_grad_enabled()` (its prediction path runs under
    torch.no_grad, as d2l evaluates), so a forward under no_grad would be a prediction."""
    return torch.enable_grad()


def _weight(old, new, batch) -> float:
    """The weight w of the new batch in new = (1 − w)·old + w·batch (least squares)."""
    step = batch - old
    return float((new - old) @ step / (step @ step))


def _convention(w1: float, w2: float, momentum) -> tuple[str, bool]:
    if abs(w1 - 1) < 1e-3 and abs(w2 - 0.5) < 1e-3:
        return ("a cumulative average (weight 1/t: 1 then 0.5), like nn.BatchNorm's "
                "momentum=None, not an exponential moving average"), False
    if abs(w1 - w2) > 1e-3:
        return f"the new batch's weight changes from step to step ({w1:.4f}, {w2:.4f})", False
    w = w1
    if abs(w) < 1e-4:
        return "the running statistics never move in training", False
    if abs(w - 1) < 1e-4:
        return "each batch replaces the running statistics (weight 1 on the new batch)", False
    if abs(w - NN_MOMENTUM) < 1e-3:
        if isinstance(momentum, float) and abs(momentum - 0.9) < 1e-9:
            s = ("weight 0.1 on the new batch, 0.9·old + 0.1·new, written with momentum=0.9 "
                 "on the old value (d2l zh's way): the same update as PyTorch's momentum=0.1")
        else:
            s = ("weight 0.1 on the new batch: PyTorch's convention, momentum=0.1 (d2l-en "
                 "writes the same update as 0.9·old + 0.1·new)")
        return s, True
    if abs(w - 0.01) < 1e-3:
        return ("0.99·old + 0.01·new: Keras's convention (momentum=0.99 weights the old value); "
                "nn.BatchNorm's momentum=0.1 moves 10× faster"), False
    if abs(w - 0.9) < 1e-3:
        return ("0.1·old + 0.9·new: momentum 0.9 applied to the new batch — the old value's "
                "weight (d2l zh, Keras) put in PyTorch's formula"), False
    return f"weight {w:.4f} on the new batch (nn.BatchNorm: 0.1)", False


def _running(case: _Case, report: Report) -> list[Finding]:
    mine, ref = case.pair()
    mine.train(), ref.train()
    n = case.n()
    olds, ws, var_fit = case.stats(mine), [], {}
    for x in case.xs[:2]:
        with _training_step():
            mine(x)
        mean_b = x.mean(dim=case.axes).reshape(-1)
        var_b = x.var(dim=case.axes, unbiased=False).reshape(-1)
        new = case.stats(mine)
        ws.append(_weight(olds[0], new[0], mean_b) if torch.any(new[0] != olds[0]) else 0.0)
        w = ws[-1]
        for kind, v in (("unbiased", var_b * n / (n - 1)), ("biased", var_b)):
            var_fit[kind] = max(var_fit.get(kind, 0.0),
                                _rel(new[1], (1 - w) * olds[1] + w * v))
        olds = new
    with _training_step():
        for x in case.xs[:2]:
            ref(x)
        mine(case.xs[2]), ref(case.xs[2])
    d_mean = _rel(case.stats(mine)[0], ref.running_mean)
    d_var = _rel(case.stats(mine)[1], ref.running_var)
    mine.eval(), ref.eval()
    with torch.no_grad():
        d_eval = _rel(mine(case.xs[3]), ref(case.xs[3]))
    conv, conv_ok = _convention(ws[0], ws[1], getattr(mine, "momentum", None))
    var_kind = min(var_fit, key=var_fit.get)
    if abs(ws[0]) < 1e-4:
        var_kind = "not measurable (no update)"
    elif var_fit[var_kind] >= TOL:
        var_kind = "neither the biased nor the unbiased batch variance with that weight"
    if case.nd == 2:
        report.momentum, report.convention = ws[0], conv
        report.running_var = (
            f"{var_kind}" + (" (÷ n−1), as nn.BatchNorm stores it" if var_kind == "unbiased"
                              else " (÷ n), as d2l writes it; nn.BatchNorm stores the unbiased "
                                   "estimate (÷ n−1)" if var_kind == "biased" else ""))
    name = f"running statistics, {case.label}"
    detail = (f"new-batch weight {ws[0]:.4f}, {ws[1]:.4f} (nn: 0.1000); variance {var_kind}"
              f" (n = {n}); after 3 steps max |Δ| mean {d_mean:.1e}, var {d_var:.1e}")
    return [Finding(name, conv_ok and d_mean < TOL and d_var < TOL, detail,
                    max(d_mean, d_var)),
            Finding(f"eval output after 3 training steps, {case.label}", d_eval < TOL,
                    f"max |Δ| {d_eval:.1e} vs {type(ref).__name__} trained the same" + (
                        "; from the biased running variance" if d_eval >= TOL and
                        var_kind == "biased" and d_mean < TOL else ""), d_eval)]


def _replica(case: _Case, report: Report) -> list[Finding]:
    mine, ref = case.pair()
    before = case.stats(mine)
    mine.train(), ref.train()
    with _training_step():
        dp_replica(mine)(case.xs[0])
        dp_replica(ref)(case.xs[0])
    after = case.stats(mine)
    kept = bool(torch.any(after[0] != before[0]))
    with _training_step():
        mine(case.xs[0])
    moves = bool(torch.any(case.stats(mine)[0] != after[0]))
    d = max(_rel(after[0], ref.running_mean), _rel(after[1], ref.running_var))
    report.replica_keeps_stats = kept
    if kept:
        detail = (f"a training step on a replica updates the module's own statistics "
                  f"(max |Δ| vs nn on a replica {d:.1e})")
    elif not moves:
        detail = "not measurable: the statistics do not move even without a replica"
    else:
        detail = ("LOST: after a training step on a replica the module's running mean is "
                  "unchanged, so under nn.DataParallel on 2+ GPUs the running statistics "
                  "never move and eval mode normalises with their initial 0 and 1. Register "
                  "them as buffers and update them in place (e.g. running_mean.lerp_(mean, "
                  "0.1)), as nn.BatchNorm does")
    in_state = case.names.mean in mine.state_dict() and case.names.var in mine.state_dict()
    out = [Finding(f"DataParallel replica, {case.label}", kept, detail, d),
           Finding("running statistics in state_dict", in_state,
                   "saved and loaded with the model, moved by .to()" if in_state else
                   "not in state_dict: not saved with the model, not moved by .to(device)")]
    return out


def _batch_of_one(case: _Case) -> Finding:
    mine, ref = case.pair()
    mine.train(), ref.train()
    x = case.xs[0][:1]
    try:
        r = ref(x)
        ref_says = None
    except Exception as e:
        r, ref_says = None, one_line(e)
    try:
        y = mine(x)
    except Exception as e:
        if ref_says:
            return Finding(f"batch size 1, {case.label}", True,
                           f"raises {one_line(e)[:70]} (so does nn)")
        return Finding(f"batch size 1, {case.label}", False,
                       f"raises {one_line(e)[:80]}; {type(ref).__name__} does not")
    finite_y = bool(torch.isfinite(y).all())
    stats = case.stats(mine) if case.names.mean and case.names.var else ()
    finite_stats = all(bool(torch.isfinite(s).all()) for s in stats)
    finite = finite_y and finite_stats
    nan = ("" if finite_y else "; NaN or inf in the output") + (
        "" if finite_stats else "; the running statistics became NaN or inf (an unbiased "
                                "variance ÷ (n − 1) with n = 1?)")
    if r is not None:
        d = _rel(y, r)
        return Finding(f"batch size 1, {case.label}", d < TOL and finite,
                       f"max |Δ| {d:.1e} vs {type(ref).__name__} (mean over H·W)" + nan, d)
    is_beta = _rel(y, case.beta.view(case.view).expand_as(y)) < TOL
    ok = finite and is_beta
    detail = (f"{type(ref).__name__} raises ValueError; yours returns "
              + ("beta exactly: x̂ = 0, a batch of one is its own mean, so nothing is learnt"
                 if is_beta else "something other than beta") + nan)
    return Finding(f"batch size 1, {case.label}", ok, detail)


def _gradients(case: _Case) -> Finding:
    mine, ref = case.pair()
    mine.train(), ref.train()
    xm = case.xs[3].clone().requires_grad_(True)
    xr = case.xs[3].clone().requires_grad_(True)
    (mine(xm) * case.w).sum().backward()
    (ref(xr) * case.w).sum().backward()
    parts, bad, worst = [], [], 0.0
    for label, got, want in (("input", xm.grad, xr.grad),
                             ("gamma", _grad(mine, case.names.gamma), ref.weight.grad),
                             ("beta", _grad(mine, case.names.beta), ref.bias.grad)):
        if got is None:
            parts.append(f"{label}: no gradient")
            bad.append(label)
            continue
        d = _rel(got, want)
        worst = max(worst, d)
        parts.append(f"{label} {d:.1e}")
        if d >= TOL:
            bad.append(label)
    return Finding(f"gradients, {case.label}", not bad,
                   "max |Δ| vs autograd through nn: " + ", ".join(parts), worst)


def _grad(m: nn.Module, name: str | None):
    return None if name is None else get_tensor(m, name).grad


def check_batchnorm(cls_or_factory: Callable, target: str = "") -> Report:
    """Hold `cls_or_factory` (a class or function taking (num_features, num_dims) or
    (num_features)) against nn.BatchNorm1d/2d. Raises CheckError when it cannot be built, or
    its forward raises on both shapes."""
    label, make, probe = build_learner(cls_or_factory)
    names = find_names(probe)
    report = Report(target or getattr(cls_or_factory, "__name__", "?"), label, {
        "gamma": _named(names, names.gamma), "beta": _named(names, names.beta),
        "running mean": _named(names, names.mean), "running var": _named(names, names.var)})
    findings, errors = report.findings, []
    for i, (shape_label, shape) in enumerate(SHAPES.items()):
        case = _Case(f"{shape_label} {shape}", shape, make, names, seed=i)
        try:
            case.pair()[0].train()(case.xs[0])
        except Exception as e:
            errors.append(f"{shape_label}: {one_line(e)}")
            findings.append(Finding(f"forward, {case.label}", False,
                                    f"raises {one_line(e)[:100]}"))
            continue
        checks = [_train_output, _eval_output, _gradients, _batch_of_one]
        for check in checks:
            findings.append(_guard(check, case))
        if names.mean is None or names.var is None:
            continue
        findings += _guard_many(_running, case, report)
        if case.nd == 2:
            findings += _guard_many(_replica, case, report)
    if len(errors) == len(SHAPES):
        raise CheckError("its forward raises: " + "; ".join(errors))
    if names.mean is None or names.var is None:
        findings.append(Finding("running statistics", False,
                                "none found: no buffer or tensor attribute of 4 values "
                                "starting at 0 (mean) and 1 (variance)"))
    return report


def _named(names: Names, n: str | None) -> str:
    return "not found" if n is None else f"{n} ({names.kinds[n]})"


def _guard(check, case: _Case) -> Finding:
    try:
        return check(case)
    except Exception as e:
        return Finding(f"{check.__name__.strip('_').replace('_', ' ')}, {case.label}", False,
                       f"raises {one_line(e)[:100]}")


def _guard_many(check, case: _Case, report: Report) -> list[Finding]:
    try:
        return check(case, report)
    except Exception as e:
        return [Finding(f"{check.__name__.strip('_').replace('_', ' ')}, {case.label}", False,
                        f"raises {one_line(e)[:100]}")]


def add_check_bn_command(sub) -> None:
    p = sub.add_parser("check-bn", help="hold your own BatchNorm against nn.BatchNorm "
                                        "(runs your code: local only)")
    p.add_argument("target", metavar="FILE.py:ClassName",
                   help="your module: a class taking (num_features, num_dims) like d2l's or "
                        "(num_features) like PyTorch's")
    p.set_defaults(func=run_check_bn)


def run_check_bn(args) -> int:
    """Exit 0 when everything agrees, 1 when something differs, 2 on unusable input."""
    try:
        report = check_batchnorm(load_class(args.target), args.target)
    except CheckError as e:
        print(f"bnviz check-bn: {e}", file=sys.stderr)
        return 2
    print(report.text())
    return 0 if report.ok else 1
