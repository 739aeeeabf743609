"""Batch size: the GN paper's figure on LeNet, and what batch size 1 does to BN."""
import streamlit as st

from bnviz import charts, ui
from bnviz.config import Config
from bnviz.experiments import GridPoint, batch_size_grid
from bnviz.inside import layer_io
from bnviz.ui_nav import via_app
from bnviz.ui_grid import grid_controls, grid_panel, run_buttons

via_app()  # first request after a server start: rerun through app.py

st.title("Batch size")
st.info(ui.BATCH_HELP)
base, problems = grid_controls(("dataset", "train_size", "epochs", "seed", "lr"), "batch")
c1, c2 = st.columns(2)
sizes = c1.multiselect("Batch sizes", [2, 4, 8, 16, 32, 64, 128, 256, 512],
                       [4, 16, 64, 256], key="bs_sizes")
norms = c2.multiselect("Normalisations", ["bn", "group", "layer", "none"],
                       ["bn", "group", "layer", "none"], key="bs_norms",
                       format_func=lambda n: ui.CHOICE_LABELS[n])
scale = st.toggle("Scale the learning rate with the batch size (lr × batch / 256)", True,
                  help="Without it, small batches take many more steps at the same lr.")
st.caption("Every run sees the same number of examples (epochs × train-set size), so small "
           "batches take more, noisier steps — as in Wu & He's Group Normalization figure.")
points = batch_size_grid(base, sorted(sizes), norms, scale_lr=scale)
if points and not problems:
    run_buttons(points, base)
    t = grid_panel(points, "batch", chart=lambda t, revision: charts.sweep_figure(
        t, "batch_size", "norm", title="Test accuracy vs batch size", revision=revision))
    done = t[t.status == "finished"]
    if len(done) == len(t) and "norm" in t and len(sizes) > 1:
        lo, hi = min(sizes), max(sizes)
        for n in norms:
            d = done[done.norm == n].set_index("batch_size").test_acc
            st.write(f"**{ui.CHOICE_LABELS[n]}**: {d.get(lo, float('nan')):.3f} at batch {lo} "
                     f"vs {d.get(hi, float('nan')):.3f} at batch {hi}.")

st.header("Batch size 1, live")
st.markdown("With one example, the batch mean *is* the example: after subtracting it every "
            "fully-connected unit is exactly 0. `nn.BatchNorm1d` refuses to train; d2l's "
            "from-scratch BN trains but learns nothing; BN on the conv layers only still has "
            "H×W positions per channel to average over, so it trains.")
one = Config().replace(dataset=base.dataset, train_size=base.train_size or 2000, epochs=1,
                       batch_size=1, lr=0.02, activation="relu", seed=base.seed)
trio = [GridPoint("nn.BatchNorm1d at batch 1", one),
        GridPoint("BN from scratch at batch 1", one.replace(norm="bn_scratch")),
        GridPoint("BN on conv layers only", one.replace(norm_fc1=False, norm_fc2=False))]
run_buttons(trio, one, "▶ Run the three batch-1 runs")
t1 = grid_panel(trio, "batch1")
for _, row in t1[t1.status == "failed"].iterrows():
    v = ui.manager().get(row.run_id)
    if v is not None:
        st.error(f"{row.run}: {v.reason}")
io = layer_io(one.replace(norm="bn_scratch"), 1, "fc1", seed=base.seed)
st.plotly_chart(charts.histogram_figure(
    io.output, f"fc1 after BN, one real image: every value is {abs(io.output).max():g}",
    "normalised activation"), key="hist1")
conv = layer_io(one.replace(norm="bn_scratch"), 1, "conv1", seed=base.seed)
st.caption(f"conv1 at N=1 averages over {conv.count} values per channel (1×24×24), so its "
           f"normalised outputs still vary (std {conv.out_std.mean():.2f}).")
