"""Vertebral levels on any fluoroscopy view of any part of the spine, counted from
whatever anchor is in view — and "I don't know" when none is.

``label_spine(frame) -> SpineLevels``: reads only the Frame's pixels, spacing and C-arm
settings (never ``truth``). Steps:

1. The column is traced and straightened (``levels_column``); its disc spaces are found
   at the pitch the image shows (``levels_discs``); the vertebrae lie between them
   (``levels_vertebra``).
2. Each vertebra is classified (softmax regression on its features) into what the image
   can tell apart: above C1 (skull), C1, C2, C3–C6, C7, T1, T2–T11, T12, L1–L4, L5, S1,
   below S1 (sacrum). The first rib (T1), the last rib (T12), the dens (C1/C2), C7's
   long spinous process and the sacrum (L5/S1) are *anchor* classes; the others look
   alike along their run.
3. The count: the chain's vertebrae are consecutive, so the only unknown is the name of
   the first one. Every offset along the standard column (two states above C1, C1 … S1,
   three sacral states below) gets the sum of the vertebrae's log-likelihood ratios
   (class probability over its prior) for the classes that offset gives them; a softmax
   at a fitted temperature turns the sums into the posterior of each offset. A run of
   look-alike vertebrae (T4–T9, say) fits several offsets equally: the posterior stays
   spread and below 0.5.
4. Reconciling anchors: every vertebra that its classifier puts in an anchor class with
   probability ≥ ``strong`` fixes the offsets it allows; when two such anchors allow no
   common offset (a transitional vertebra: a sacralised L5 seen with the last rib, 11 or
   13 rib pairs with the sacrum), the result is ``"conflict"``.
5. Output: the anchors that support the best offset ("S1", "T12", "T1", "C2", "C7",
   joined by "+"), each vertebra's name and calibrated confidence (logistic on the
   posterior's logit, fitted on tuning seeds, one for counts an anchor supports and one
   for the rest). With no anchor supporting the count, a calibrated confidence below 0.5
   or a conflict, the anchor is ``"none"`` / ``"conflict"``, the vertebrae are numbered
   ``v1``, ``v2``, … from the top and every confidence stays below 0.5 (at most 0.45).
   Each label sits on its body: on lateral and oblique views moved across the traced
   path by ``levels_centre`` (the path may follow the pillars or pedicles).

The learned weights (disc filter, classifier, body-centre scorer, temperature,
calibration) are in
``data/levels_spine.npz``, fitted by ``scripts/train_levels_spine.py`` on tuning seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from needleguide.frame import Frame
from needleguide.guidance.levels_centre import CentreNet, body_offsets
from needleguide.guidance.levels_column import WORK_MM, column
from needleguide.guidance.levels_discs import DiscFilter, find_discs
from needleguide.guidance.levels_vertebra import features, vertebrae, view_of

NAMES = ("SK2", "SK1", "C1", "C2", "C3", "C4", "C5", "C6", "C7",
         *(f"T{i}" for i in range(1, 13)), "L1", "L2", "L3", "L4", "L5", "S1", "S2", "S3",
         "S4")
CLASSES = ("skull", "C1", "C2", "C3-C6", "C7", "T1", "T2-T11", "T12", "L1-L4", "L5", "S1",
           "sacrum")
ANCHOR = {0: "C2", 1: "C2", 2: "C2", 4: "C7", 5: "T1", 7: "T12", 9: "S1", 10: "S1", 11: "S1"}
REAL = frozenset(NAMES[2:-3])  # the names a label may carry (C1 … S1)
SACRAL = (10, 11)  # classes S1 and below S1: the sacrum
MODEL_PATH = Path(__file__).with_name("data") / "levels_spine.npz"


def class_of(name: str) -> int:
    """Classifier class of a vertebra name (``NAMES``)."""
    if name.startswith("SK"):
        return 0
    if name in ("C1", "C2"):
        return 1 if name == "C1" else 2
    if name in ("C3", "C4", "C5", "C6"):
        return 3
    if name == "C7":
        return 4
    if name == "T1":
        return 5
    if name == "T12":
        return 7
    if name.startswith("T"):
        return 6
    if name in ("L1", "L2", "L3", "L4"):
        return 8
    if name == "L5":
        return 9
    if name == "S1":
        return 10
    return 11


STATE_CLASS = np.array([class_of(n) for n in NAMES])


@dataclass(frozen=True)
class VertebraLabel:
    """One vertebra: its name (``v1`` … when the count is not anchored), body centre in
    frame pixels (col, row), the calibrated probability that its best absolute name
    (``guess``) is right, and that name."""

    name: str
    col_px: float
    row_px: float
    confidence: float
    guess: str

    def to_json(self) -> dict:
        return {"name": self.name, "px": [round(self.col_px, 1), round(self.row_px, 1)],
                "confidence": round(float(self.confidence), 3)}


@dataclass(frozen=True)
class SpineLevels:
    """The result for one frame: the anchor ("S1", "T12", "T1", "C2", "C7", several
    joined by "+", or "none" / "conflict"), the vertebrae (cranial first), the level
    pitch (mm), the view family and the best offset's posterior."""

    anchor: str
    vertebrae: list[VertebraLabel] = field(default_factory=list)
    pitch_mm: float = 0.0
    view: str = "ap"
    posterior: float = 0.0

    def to_json(self) -> dict:
        return {"anchor": self.anchor, "vertebrae": [v.to_json() for v in self.vertebrae]}


@dataclass(frozen=True)
class SpineModel:
    """Fitted weights (see ``levels_fit`` and the training script): the disc filter, the
    vertebra classifier (feature mean / sd, softmax weights; optional hidden layer H, hb),
    the class prior of its training set, the temperature and the calibration."""

    disc: DiscFilter
    mu: np.ndarray
    sd: np.ndarray
    W: np.ndarray
    b: np.ndarray
    prior: np.ndarray
    tau: float
    cal: np.ndarray  # logistic calibrations (a, c) on the posterior's logit: anchored, not
    strong: float = 0.7
    H: np.ndarray | None = None
    hb: np.ndarray | None = None
    centre: CentreNet | None = None


@lru_cache(maxsize=2)
def load_model(path: str | None = None) -> SpineModel:
    """The fitted model (``data/levels_spine.npz`` unless ``path``)."""
    z = np.load(path or MODEL_PATH)
    disc = DiscFilter(z["disc_lin_w"], float(z["disc_lin_b"]), z["disc_W1"], z["disc_b1"],
                      z["disc_w2"], float(z["disc_b2"]))
    hid = ("H" in z.files) and z["H"].size > 0
    centre = CentreNet(z["centre_mu"], z["centre_sd"], z["centre_W1"], z["centre_b1"],
                       z["centre_w2"], float(z["centre_b2"])) if "centre_W1" in z.files \
        else None
    return SpineModel(disc, z["mu"], z["sd"], z["W"], z["b"], z["prior"], float(z["tau"]),
                      z["cal"], float(z["strong"]), z["H"] if hid else None,
                      z["hb"] if hid else None, centre)


def save_model(m: SpineModel, path: str | Path) -> None:
    """Write ``m`` as an .npz (the layout ``load_model`` reads)."""
    d = m.disc
    c = m.centre
    extra = {} if c is None else dict(centre_mu=c.mu, centre_sd=c.sd, centre_W1=c.W1,
                                      centre_b1=c.b1, centre_w2=c.w2, centre_b2=c.b2)
    np.savez(path, disc_lin_w=d.lin_w, disc_lin_b=d.lin_b, disc_W1=d.W1, disc_b1=d.b1,
             disc_w2=d.w2, disc_b2=d.b2, mu=m.mu, sd=m.sd, W=m.W, b=m.b, prior=m.prior,
             tau=m.tau, cal=m.cal, strong=m.strong,
             H=np.zeros(0) if m.H is None else m.H, hb=np.zeros(0) if m.hb is None else m.hb,
             **extra)


def class_probs(X: np.ndarray, m: SpineModel) -> np.ndarray:
    """Softmax class probabilities (n, 12) of standardised features."""
    A = (X - m.mu) / m.sd
    if m.H is not None:
        A = np.tanh(A @ m.H + m.hb)
    Z = A @ m.W + m.b
    Z -= Z.max(axis=1, keepdims=True)
    P = np.exp(Z)
    return P / P.sum(axis=1, keepdims=True)


def offset_posterior(P: np.ndarray, m: SpineModel) -> np.ndarray:
    """Posterior of every offset o (chain vertebra k is NAMES[o + k])."""
    n = P.shape[0]
    L = np.log(np.clip(P, 1e-6, 1.0)) - np.log(m.prior)[None, :]
    n_off = len(NAMES) - n + 1
    if n == 0 or n_off <= 0:
        return np.zeros(max(n_off, 0))
    idx = np.arange(n_off)[:, None] + np.arange(n)[None, :]
    S = L[np.arange(n)[None, :], STATE_CLASS[idx]].sum(axis=1) * m.tau
    S -= S.max()
    e = np.exp(S)
    return e / e.sum()


def anchors(P: np.ndarray, o: int, strong: float) -> tuple[set[str], bool]:
    """(anchors that support offset ``o``, whether strong anchors contradict each other)."""
    n = P.shape[0]
    n_off = len(NAMES) - n + 1
    allowed = np.ones(n_off, bool)
    support: set[str] = set()
    for k in range(n):
        for c, name in ANCHOR.items():
            if P[k, c] < strong:
                continue
            ok = STATE_CLASS[np.arange(n_off) + k] == c
            allowed &= ok
            if ok[o]:
                support.add(name)
    return support, not allowed.any()


def calibrate(post: float, m: SpineModel, anchored: bool) -> float:
    """Calibrated probability that the best offset is right: a logistic on the
    posterior's logit, fitted separately for counts that an anchor supports
    (``m.cal[:2]``) and for those no anchor supports (``m.cal[2:]``)."""
    p = float(np.clip(post, 1e-6, 1 - 1e-6))
    a, c = (m.cal[0], m.cal[1]) if anchored else (m.cal[2], m.cal[3])
    z = a * np.log(p / (1 - p)) + c
    return float(1.0 / (1.0 + np.exp(-z)))


def label_spine(frame: Frame, model: SpineModel | None = None) -> SpineLevels:
    """Level labels of one fluoroscopy frame (module docstring)."""
    m = model or load_model()
    col = column(frame)
    n = col.strip.shape[0]
    valid = np.isfinite(col.strip[:, col.strip.shape[1] // 2])
    D = find_discs(col.strip, m.disc)
    verts = vertebrae(D.t, D.pitch_mm, n, valid)
    lateral, sin_o, _ = view_of(frame)
    view = "lateral" if lateral else ("oblique" if sin_o > 0.2 else "ap")
    if not verts:
        return SpineLevels("none", [], 0.0, view, 0.0)
    X = features(col, verts, frame)
    P = class_probs(X, m)
    post = offset_posterior(P, m)
    o = int(np.argmax(post))
    _, conflict = anchors(P, o, m.strong)
    sup, _ = anchors(P, o, 0.5)
    conf = calibrate(float(post[o]), m, bool(sup) and not conflict)
    pitch = float(np.median([v.pitch_mm for v in verts]))
    named = not conflict and conf >= 0.5 and bool(sup)
    if not named:
        conf = min(conf, 0.45)
    anchor = "conflict" if conflict else ("+".join(sorted(sup)) if named else "none")
    across = body_offsets(col, verts, frame, m.centre,
                          np.isin(np.argmax(P, axis=1), SACRAL))
    out = []
    k_rel = 0
    for k, v in enumerate(verts):
        guess = NAMES[o + k]
        p = v.pitch_mm / WORK_MM
        if guess not in REAL or not (0.3 * p <= v.t <= n - 1 - 0.3 * p):
            continue  # a body whose centre may lie outside the image is not labelled
        k_rel += 1
        c, r = col.to_frame_px(v.t, float(across[k]))
        out.append(VertebraLabel(guess if named else f"v{k_rel}", c, r, conf, guess))
    return SpineLevels(anchor, out, pitch, view, float(post[o]))


def draw_spine(frame: Frame, res: SpineLevels) -> np.ndarray:
    """RGB uint8 overlay: a tick, the name and the confidence at every vertebra (green
    ≥ 0.8, amber 0.5–0.8, grey below) and the anchor in the corner."""
    import cv2

    from needleguide.guidance.levels_column import bone_bright

    g = bone_bright(frame)
    if frame.settings.get("display") == "black-bone":
        g = 1.0 - g
    img = cv2.cvtColor((np.clip(g, 0, 1) * 255).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    scale = max(1, 512 // img.shape[0])
    img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    for v in res.vertebrae:
        c, r = int(v.col_px * scale), int(v.row_px * scale)
        colr = (60, 220, 60) if v.confidence >= 0.8 else \
            ((240, 200, 40) if v.confidence >= 0.5 else (170, 170, 170))
        cv2.line(img, (c + 12, r), (c + 34, r), colr, 2, cv2.LINE_AA)
        cv2.putText(img, f"{v.name} {v.confidence:.2f}", (c + 38, r + 5),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, colr, 1, cv2.LINE_AA)
    cv2.putText(img, f"anchor: {res.anchor}  pitch {res.pitch_mm:.0f} mm  {res.view}",
                (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return img


__all__ = ["label_spine", "draw_spine", "SpineLevels", "VertebraLabel", "SpineModel",
           "load_model", "save_model", "NAMES", "CLASSES", "class_of", "WORK_MM"]
