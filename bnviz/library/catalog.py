"""The app's pages and the questions they answer, in one list.

A question is one entry: its id, its page, its title, the grid it runs (arms with ids), its
default controls, how its runs are read (bnviz.readings) and its findings section. The menu
(app.py) and the About page's table read PAGES; the library build trains (or reuses) exactly
the questions' runs, `library check` verifies them, the pages take their default controls from
here, and the README's Findings are rendered from them, so none of these can disagree. A
page's control values other than these defaults make a different question, which the library
does not answer. This module needs no torch (the About page and the menu import it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from bnviz import readings
from bnviz.config import Config, validate
from bnviz.i18n import N_, _
from bnviz.experiments import (DEFAULT_SEEDS, GridPoint, ICS_ACTIVATION, ICS_EVERY, ICS_LR,
                               NORM_BATCH_SGD, WEIGHT_DECAY, ablation_grid, batch_size_grid,
                               bias_grid, dataparallel_grid, finetune_grid, fluctuation_grid,
                               ics_grid, landscape_grid, lite_grid, lr_grid, norm_batch_grid,
                               placement_grid, presets_grid, train_only_grid, weight_decay_grid,
                               with_seeds)
from bnviz.landscape import PROBE_EVERY as LANDSCAPE_EVERY

LIBRARY_SEEDS = DEFAULT_SEEDS  # paired seeds 0..4 per configuration
WD_EVAL_EVERY = 50  # the weight-decay page: ‖w‖ about 5 times per epoch of the full data
LITE_EVERY = 47  # lite BN, placement: an evaluation (and the activations' distribution) 5 times
# per epoch of the full data
# Fine-tuning: 2 epochs on part A, 1 on part B at a tenth of the pretraining lr (fine-tuning
# lowers the lr; with BN frozen at lr 1.0 the network is one without normalisation at BN's
# lr), a snapshot every 10 steps for the drift curve.
FINETUNE_SETTINGS = {"epochs": 2, "finetune_epochs": 1, "finetune_lr": 0.1,
                     "snapshot_every": 10}

# Control defaults of the pages whose grids take more than the base config.
LRS = (0.1, 1.0, 3.0, 10.0, 30.0)
PER_BN = (2, 4, 16, 64, 256)
NORM_BATCH_NORMS = ("bn", "renorm")  # the batch-dependent norms of the normalisation-batch chart
SGD_SIZES = (4, 16, 64, 256)
SGD_NORMS = ("bn", "group", "layer", "none")


def norm_batch_points(base: Config, per_bn=PER_BN) -> list[GridPoint]:
    """The batch-size page's first chart: GroupNorm with 2 groups and one device whatever
    the link says, as every statement on that page assumes."""
    return norm_batch_grid(base.replace(groups=2, devices=1), sorted(per_bn),
                           norms=NORM_BATCH_NORMS)


def sgd_batch_points(base: Config, sizes=SGD_SIZES, norms=SGD_NORMS,
                     scale_lr: bool = True) -> list[GridPoint]:
    """The batch-size page's second chart, minus the batch sizes the train set cannot fill."""
    points = batch_size_grid(base.replace(groups=2, devices=1), sorted(sizes), norms,
                             scale_lr=scale_lr)
    return [p for p in points if not validate(p.config)]


def batch1_config(base: Config) -> Config:
    """Batch size 1, kept small (the bundled subset, 2,000 images, one epoch, ReLU)."""
    return Config().replace(dataset="subset", train_size=2000, epochs=1, batch_size=1,
                            lr=0.02, activation="relu", seed=base.seed)


def batch1_points(base: Config) -> list[GridPoint]:
    one = batch1_config(base)
    return [GridPoint(_("nn.BatchNorm1d at batch 1"), one, "bn_batch1"),
            GridPoint(_("BN from scratch at batch 1"), one.replace(norm="bn_scratch"),
                      "scratch_batch1"),
            GridPoint(_("BN on the conv layers only, batch 1"),
                      one.replace(norm_fc1=False, norm_fc2=False, compare_eval=True),
                      "conv_only_batch1")]


def gamma_points(base: Config) -> list[GridPoint]:
    return [GridPoint(_("gamma/beta learned"), base.replace(freeze_affine=False), "learned"),
            GridPoint(_("gamma/beta frozen"), base.replace(freeze_affine=True), "frozen")]


@dataclass(frozen=True)
class Page:
    """One page of the app. Its id is its URL path ("" for the landing page) and the key of
    its state everywhere (its controls restored from a link, its seeds control). Title,
    answers and section are English, marked with N_: the menu shows _(title), _(section)
    (app.py) and the About page answers_text(page)."""
    id: str
    file: str  # under pages/
    title: str
    icon: str
    answers: str  # what it answers, one line of the About page's table
    section: str = N_("Questions, answered by experiment")


APP = "bnviz"
WHY = N_("Why does BN help?")  # the menu's sections past the chapter
VARIANTS = N_("BN's variants and exercises")
PAGES: tuple[Page, ...] = (
    Page("", "home.py", N_("About bnviz"), ":material/home:", "", APP),
    Page("lab", "lab.py", N_("Live lab"), ":material/science:",
         N_("Train one model with any BN setup (batch size, which layers, before/after the "
         "activation, dropout instead of BN, from-scratch BN, simulated devices) and watch "
         "loss, train/test accuracy, test-accuracy fluctuation and the gamma/beta of every "
         "layer as it trains."), APP),
    Page("compare", "compare.py", N_("Compare runs"), ":material/stacked_line_chart:",
         N_("Overlay runs from this session, the run library or shared links; repeated seeds as "
         "a band; config differences highlighted."), APP),
    Page("batch-size", "batch_size.py", N_("Batch size (and batch size 1)"), ":material/filter_1:",
         N_("Test accuracy vs batch size for BN, GroupNorm, LayerNorm and no norm; why batch "
         "size 1 teaches BN nothing, live; minibatch vs batch size.")),
    Page("inside", "inside_bn.py", N_("Inside a BN layer"), ":material/layers:",
         N_("One real batch through a conv and an FC BN layer: shapes, the axes averaged over "
         "(N, H, W), how many values go into each mean, gamma/beta shapes.")),
    Page("fluctuation", "fluctuation.py", N_("Fluctuating test accuracy"),
         ":material/ssid_chart:",
         N_("Why test accuracy jumps between epochs with BN: running statistics vs PreciseBN vs "
         "batch statistics on the same run.")),
    Page("devices", "devices.py", N_("BN on several GPUs"), ":material/memory:",
         N_("Why the book's hand-written BN gets worse under DataParallel (its moving statistics "
         "are updated on replicas and lost), beside what per-device statistics do — both "
         "simulated exactly on one CPU.")),
    Page("bias", "bias.py", N_("Bias before BN"), ":material/exposure_zero:",
         N_("Dropping the bias of the layers that BN directly follows: {cancelled} parameters "
         "fewer, identical weights, the same loss curve to float precision.")),
    Page("learning-rate", "learning_rate.py", N_("Learning rate"), ":material/speed:",
         N_("How high lr can go with and without BN before training fails.")),
    Page("ablation", "ablation.py", N_("Which BN layers matter?"), ":material/grid_view:",
         N_("d2l's ablation: all four BN layers, none, each one removed, pairs, and dropout in "
         "place of the FC-layer BNs — one button, every configuration over paired seeds with "
         "95% confidence intervals.")),
    Page("gamma-beta", "gamma_beta.py", N_("gamma and beta"), ":material/tune:",
         N_("How the learned scale and shift of every layer spread over training, and what "
         "freezing them changes.")),
    Page("landscape", "landscape.py", N_("The loss landscape"), ":material/landscape:",
         N_("Why does BN help? Santurkar et al. (2018)'s measurement on your own LeNet: how much "
         "the loss and the gradient change along the gradient step, with and without BN, "
         "sigmoid and ReLU, over training."), WHY),
    Page("ics", "ics.py", N_("Internal covariate shift, measured"), ":material/swap_calls:",
         N_("Does BN reduce internal covariate shift, and does that matter? Santurkar et al. "
         "(2018)'s two experiments on your own LeNet: each layer's gradient before and after "
         "the earlier layers' step, with and without BN; and noisy BN, whose layers' inputs "
         "shift on purpose, beside its accuracy."), WHY),
    Page("weight-decay", "weight_decay.py", N_("Scale invariance and weight decay"),
         ":material/compress:",
         N_("With BN after a layer, scaling its weights changes nothing, so ‖w‖ only sets the "
         "effective step η/‖w‖²: each layer's ‖w‖ and η/‖w‖² over training with and without "
         "weight decay, with and without BN, and what it does to accuracy (van Laarhoven "
         "2017; Li & Arora 2019)."), WHY),
    Page("train-only", "train_only.py", N_("Train only gamma and beta"), ":material/lock:",
         N_("Every weight frozen at its random initialisation except BN's gamma and beta "
         "(Frankle et al. 2021): what LeNet reaches, against as many random weights and "
         "against training everything, and how many channels gamma switches off."), VARIANTS),
    Page("finetune", "finetune.py", N_("BN when fine-tuning"), ":material/rotate_90_degrees_ccw:",
         N_("Pretrain on upright images, fine-tune on rotated ones with BN updating or frozen in "
         "eval mode (γ/β learning or fixed): how far the running statistics move (exactly 0 "
         "when frozen) and the accuracy on the old and the new part."), VARIANTS),
    Page("lite-bn", "lite_bn.py", N_("Lite BN: only the mean, or only the variance"),
         ":material/contrast:",
         N_("d2l's exercise 4: BN that only subtracts the mean, or only divides by the standard "
         "deviation, against full BN and no norm — accuracy, loss, fluctuation, and what each "
         "does to the per-channel mean and variance the activation sees."), VARIANTS),
    Page("placement", "placement.py", N_("BN before or after the activation"),
         ":material/swap_horiz:",
         N_("BN before the activation (d2l) or after it, with sigmoid and with ReLU: accuracy, "
         "and the distribution at the activation's input and output (what the sigmoid sees "
         "when BN comes after it)."), VARIANTS),
)
PAGE = {p.id: p for p in PAGES}


@dataclass(frozen=True)
class Question:
    """One page's default question. `settings` are the knob values the page opens with where
    they differ from Config's defaults; the library's runs use the full Fashion-MNIST."""
    key: str  # the question's id
    page: str  # the id of the page that asks it (PAGES)
    title: str
    make: Callable[[Config], list[GridPoint]]  # the grid: arms with ids
    settings: dict = field(default_factory=dict)  # default controls beyond Config's
    read: Callable | None = None  # summary -> bnviz.readings.Reading
    heading: str = ""  # its section of the README's Findings (scripts/findings.py)
    cli: str = ""  # the command that answers it
    seeds: int = LIBRARY_SEEDS

    def base(self) -> Config:
        return Config().replace(**{"dataset": "full", **self.settings})

    def points(self, base: Config | None = None) -> list[GridPoint]:
        return with_seeds(self.make(base or self.base()), self.seeds)

    def arm(self, arm: str, base: Config | None = None) -> GridPoint:
        """The grid point with this arm id; KeyError when the grid has no such arm."""
        for p in self.make(base or self.base()):
            if p.arm == arm:
                return p
        raise KeyError(f"question {self.key!r} has no arm {arm!r}")


QUESTIONS: tuple[Question, ...] = (
    Question("presets", "lab", "d2l's runs in both editions (the lab's presets)", presets_grid,
             read=readings.presets, heading="Reproducing d2l",
             cli="bnviz sweep presets --epochs 10 --seeds 5 --dataset full"),
    Question("fluctuation", "fluctuation", "Fluctuating test accuracy", fluctuation_grid,
             read=readings.fluctuation, heading="Fluctuating test accuracy (question 5)",
             cli="bnviz sweep fluctuation --seeds 5"),
    Question("ablation", "ablation", "Which BN layers matter?", ablation_grid,
             read=readings.ablation, heading="Which BN layers matter (questions 9 and 10)",
             cli="bnviz ablation --epochs 10 --seeds 5"),
    Question("lr", "learning-rate", "Learning rate with and without BN",
             lambda b: lr_grid(b, LRS), {"epochs": 2}, read=readings.lr,
             heading="Learning rate (question 8)",
             cli="bnviz sweep lr --epochs 2 --seeds 5 --values 0.1,1,3,10,30"),
    Question("norm_batch", "batch-size", f"Examples per BN at SGD batch {NORM_BATCH_SGD}",
             norm_batch_points, {"epochs": 2}, read=readings.norm_batch,
             heading=f"Examples per BN at SGD batch {NORM_BATCH_SGD} (question 1; Group "
                     "Normalization paper's question)",
             cli="bnviz sweep norm_batch --epochs 2 --seeds 5 --norms bn,renorm "
                 "--values 2,4,16,64,256"),
    Question("devices", "devices", "The book's BN on several devices", dataparallel_grid,
             {"epochs": 3}, read=readings.devices, heading="Several devices (question 6)",
             cli="bnviz sweep dataparallel --epochs 3 --seeds 5"),
    Question("bias", "bias", "Bias before BN", bias_grid, {"epochs": 3}, read=readings.bias,
             heading="Bias before BN (question 7)", cli="bnviz sweep bias --epochs 3 --seeds 5"),
    Question("gamma", "gamma-beta", "gamma and beta: learned or frozen", gamma_points,
             read=readings.gamma,
             heading="gamma and beta learned or frozen at 1 and 0 (d2l's exercise)",
             cli="bnviz library show --only gamma"),
    Question("sgd_batch", "batch-size", "SGD batch size at a fixed number of examples seen",
             sgd_batch_points, {"epochs": 2}, read=readings.sgd_batch,
             heading="SGD batch size at a fixed number of examples seen (lr 1.0 × batch / "
                     "256, GroupNorm 2 groups)", cli="bnviz library show --only sgd_batch"),
    Question("batch1", "batch-size", "Batch size 1", batch1_points, read=readings.batch1,
             heading="Batch size 1 (the bundled subset, 2,000 images, lr 0.02, ReLU)",
             cli="bnviz library show --only batch1"),
    Question("landscape", "landscape", "The loss landscape with and without BN",
             landscape_grid, {"epochs": 3, "eval_every": LANDSCAPE_EVERY},
             read=readings.landscape,
             heading="The loss landscape along the gradient (Santurkar et al. 2018, §3.1)",
             cli=f"bnviz sweep landscape --epochs 3 --eval-every {LANDSCAPE_EVERY} --seeds 5"),
    Question("ics", "ics", "Internal covariate shift and noisy BN", ics_grid,
             {"epochs": 3, "eval_every": ICS_EVERY, "activation": ICS_ACTIVATION,
              "lr": ICS_LR}, read=readings.ics,
             heading=f"Internal covariate shift and noisy BN (Santurkar et al. 2018, §2.2; "
                     f"{ICS_ACTIVATION}, lr {ICS_LR:g})",
             cli=f"bnviz sweep ics --epochs 3 --eval-every {ICS_EVERY} --activation "
                 f"{ICS_ACTIVATION} --lr {ICS_LR:g} --seeds 5"),
    Question("weight_decay", "weight-decay", "Weight decay with and without BN",
             weight_decay_grid, {"epochs": 3, "eval_every": WD_EVAL_EVERY,
                                 "weight_decay": WEIGHT_DECAY},
             read=readings.weight_decay,
             heading=f"Scale invariance and weight decay ({WEIGHT_DECAY:g}; van Laarhoven "
                     "2017, Li & Arora 2019)",
             cli=f"bnviz sweep weight_decay --epochs 3 --eval-every {WD_EVAL_EVERY} "
                 f"--weight-decay {WEIGHT_DECAY:g} --seeds 5"),
    Question("train_only", "train-only", "Train only gamma and beta", train_only_grid,
             {"epochs": 3}, read=readings.train_only,
             heading="Training only gamma and beta (Frankle, Schwab & Morcos 2021)",
             cli="bnviz sweep train_only --epochs 3 --seeds 5"),
    Question("finetune", "finetune", "BN frozen or updating when fine-tuning", finetune_grid,
             FINETUNE_SETTINGS, read=readings.finetune,
             heading="BN when fine-tuning on rotated images: frozen (eval mode) or updating",
             cli="bnviz sweep finetune --epochs 2 --finetune-epochs 1 --finetune-lr 0.1 "
                 "--snapshot-every 10 --seeds 5"),
    Question("lite", "lite-bn", "Lite BN: mean only, variance only", lite_grid,
             {"epochs": 3, "eval_every": LITE_EVERY}, read=readings.lite,
             heading="Lite BN: only the mean or only the variance (d2l's exercise 4)",
             cli=f"bnviz sweep lite --epochs 3 --eval-every {LITE_EVERY} --seeds 5"),
    Question("placement", "placement", "BN before or after the activation", placement_grid,
             {"epochs": 3, "eval_every": LITE_EVERY}, read=readings.placement,
             heading="BN before or after the activation, sigmoid and ReLU",
             cli=f"bnviz sweep placement --epochs 3 --eval-every {LITE_EVERY} --seeds 5"),
)
QUESTION = {q.key: q for q in QUESTIONS}
assert all(q.page in PAGE for q in QUESTIONS), "a question names a page that PAGES lacks"


def answers_text(page: Page) -> str:
    """What a page answers, as the About page's table and the README's list of pages say it
    (the bias page's parameter count computed from the default config, not written down), in
    the reader's language (English for the README)."""
    from bnviz import norm_kinds
    from bnviz.config import SITE_WIDTH, SITES
    cancelled = sum(SITE_WIDTH[s] for s in SITES if norm_kinds.cancels_bias(Config(), s))
    return _(page.answers).format(cancelled=cancelled)


def page_settings(page: str) -> dict:
    """The knob values a page opens with (beyond Config's defaults)."""
    if page not in PAGE:
        raise KeyError(f"unknown page {page!r}; pages: {', '.join(p.id for p in PAGES)}")
    out: dict = {}
    for q in QUESTIONS:
        if q.page == page:
            out.update(q.settings)
    return out


def questions_of(page: str) -> list[Question]:
    return [q for q in QUESTIONS if q.page == page]
