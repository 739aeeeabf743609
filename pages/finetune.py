"""BN when fine-tuning: frozen in eval mode, or updating, on a shifted part of the data."""
import streamlit as st

from bnviz import readings
from bnviz.dashboard import charts, ui
from bnviz.dashboard.finetune import drift_curves, layer_table, part_curves
from bnviz.dashboard.grid import finished_all, grid_controls, grid_panel, run_buttons, seeded
from bnviz.dashboard.nav import via_app
from bnviz.experiments import finetune_grid
from bnviz.i18n import N_, _
from bnviz.metrics import format_estimate
from bnviz.runs.results import summarize

via_app()  # first request after a server start: rerun through app.py

SHIFTS = {
    "rotated": N_("**part A** is half the training images (every other one) upright, **part B** "
                  "the other half turned by 90°; accuracy on part A is measured on the test "
                  "images upright, on part B on the same test images turned"),
    "classes": N_("**part A** is the training images of classes 0–4 (T-shirt/top, trouser, "
                  "pullover, dress, coat), **part B** those of classes 5–9 (sandal, shirt, "
                  "sneaker, bag, ankle boot), as many of each; the test images split the same "
                  "way"),
}

st.title(_("BN when fine-tuning"))
st.markdown(_(
    "*\"My backbone is frozen, but the statistics still move.\"* A BN layer holds two kinds of "
    "state: γ and β, which SGD trains, and the running mean and variance, which no gradient "
    "touches — **every forward pass in training mode** updates them. Freezing the weights "
    "(`requires_grad = False`) leaves them moving; only eval mode (`bn.eval()`) stops them. "
    "And in eval mode nn.BatchNorm also **normalises with those running statistics in the "
    "forward pass**, not with the batch's: that is the frozen-BN treatment practitioners use, "
    "and what this page runs (with γ and β fixed too it is what detectron2's "
    "FrozenBatchNorm2d computes).\n\n"
    "Each run trains LeNet-BN for `epochs` on part A, then fine-tunes it on part B three ways, "
    "from the same pretrained weights (paired seeds): **BN updating** (train mode, as usual), "
    "**BN frozen** (its modules in eval mode, γ/β still learning) and **BN frozen with γ/β "
    "fixed too**. Every other weight is fine-tuned in all three, at the fine-tuning learning "
    "rate."))
base, problems = grid_controls(("dataset", "train_size", "epochs", "finetune_epochs",
                                "finetune_shift", "lr", "finetune_lr", "snapshot_every",
                                "seed"), "finetune")
if base.finetune_epochs == 0:
    st.info(_("Fine-tuning epochs is 0: the grid fine-tunes for 1 epoch."))
st.markdown(_("The shift (`finetune_shift = {shift}`): {description}.").format(
    shift=base.finetune_shift, description=_(SHIFTS[base.finetune_shift])))
pretrained = base.epochs
points = seeded(finetune_grid(base), "finetune")
if not problems:
    run_buttons(points, base, page="finetune")
    t = grid_panel(points, "finetune")
    mgr = ui.manager()
    groups: dict[str, list] = {}
    for row in t.itertuples():
        v = mgr.get(row.run_id) if row.run_id else None
        if v is not None and not row.arm.endswith("@here"):
            groups.setdefault(_(readings.FINETUNE_NAMES.get(row.arm, row.run)), []).append(v)
    if groups:
        fig = charts.band_figure(drift_curves(groups),
                                 _("Running-mean drift from the start of the fine-tuning, "
                                   "mean and 95% CI of the seeds"), _("drift (running σ)"))
        fig.add_vline(x=pretrained, line_dash="dot", annotation_text=_("fine-tuning starts"))
        st.plotly_chart(fig, key="ft_drift")
        st.caption(_("Drift: the mean over channels and layers of |μ − μ₀| / σ₀, μ the running "
                     "mean at a snapshot, μ₀ and σ₀ the running mean and standard deviation "
                     "when the fine-tuning began. Before that line it shows the running means "
                     "settling during pretraining; after it, frozen BN stays at exactly 0."))
        fig = charts.band_figure(part_curves(groups),
                                 _("Test accuracy on part A and part B (running statistics), "
                                   "mean and 95% CI of the seeds"), _("test accuracy"))
        fig.add_vline(x=pretrained, line_dash="dot", annotation_text=_("fine-tuning starts"))
        st.plotly_chart(fig, key="ft_parts")
        per_layer = layer_table(groups)
        if not per_layer.empty:
            st.dataframe(per_layer.style.format("{:.4f}"), width="stretch")
            seed = next(iter(groups.values()))[0].config.seed
            st.caption(_("Drift per layer at the end of the fine-tuning, seed {seed}.")
                       .format(seed=seed))
    if finished_all(t):
        s = summarize(t)
        st.subheader(_("What these runs show"))
        r = readings.finetune(s)
        st.markdown(readings.finetune_text(r))
        for c in r.comparisons:
            st.write(c.text())
        if r.at_chance:
            st.warning(_("At chance on part B: {arms}. Fine-tuning at this learning rate broke "
                         "the network there (with BN frozen it is a network without "
                         "normalisation, which the pretraining lr may be too high for).")
                       .format(arms=", ".join(_(readings.FINETUNE_NAMES.get(a, a))
                                              for a in r.at_chance)))
        st.caption(_("Each sentence claims a difference only where the two 95% intervals over "
                     "seeds do not overlap. {estimates}.").format(estimates=", ".join(
                         _("{name}: part A {part_a}, part B {part_b}").format(
                             name=_(readings.FINETUNE_NAMES.get(row.arm, row.run)),
                             part_a=format_estimate(row.acc_part_a, row.acc_part_a_ci),
                             part_b=format_estimate(row.acc_part_b, row.acc_part_b_ci))
                         for row in s.itertuples())))
