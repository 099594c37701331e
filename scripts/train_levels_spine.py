"""Fit the whole-spine level labeller (``guidance/data/levels_spine.npz``) on tuning seeds.

Frames: for every seed, a whole-spine phantom (BMI 19–40, degeneration 0–2 and numbering
variants drawn from the seed) at 2 mm and ``--frames`` random views of it
(``lab.eval_levels_cases.make_case``: AP / lateral / oblique anywhere from C2 to
S1), 256² detector. The first three quarters of the seeds fit, the last quarter
calibrates:

Optionally (``--ct-seeds``) phantoms rendered at 1.5 mm, written as a synthetic CT in
1–5 mm slices and imported through the CT path join the fitting and calibration sets
(same 3 : 1 split).

1. disc filter: a linear pre-filter and a one-layer network (48 tanh units) on the
   descriptors of true discs at their pitch against everything else (other rows, half and
   double the pitch), every anatomy;
2. vertebra classifier: softmax after one hidden layer (``--hidden`` units) on the
   chain's vertebrae of normal-anatomy frames (variants would teach a rib on L1 to look
   like T12), classes balanced by 1/√count;
3. body-centre scorer (``levels_centre``): a one-layer network (``--centre-hidden``
   units) on the candidate descriptors of lateral and oblique vertebrae, every anatomy;
4. temperature of the count's posterior and the logistic calibration of its confidence,
   on the calibration seeds (all anatomy).

Seeds used here must stay below 1000 (held out: ≥ 1000). Frames are cached as pickles in
``--cache`` so that a refit does not re-render them.

    python scripts/train_levels_spine.py --cache /tmp/levels_cache   # seeds 100-339, CT 400-429
"""

from __future__ import annotations

import argparse
import pickle
import time
from pathlib import Path

import numpy as np


def render_seed(seed: int, frames: int, cache: Path | None, ct: bool = False) -> list[dict]:
    """The labelled frames of one tuning seed (cached): of the phantom, or (``ct``) of
    the phantom at 1.5 mm written as a synthetic CT in 1–5 mm slices and imported
    (``eval_levels_spine.ct_patient``)."""
    path = cache / f"seed_{'ct_' if ct else ''}{seed}.pkl" if cache else None
    if path is not None and path.exists():
        return pickle.loads(path.read_bytes())
    import tempfile

    from needleguide.anatomy.phantom.thoracic_dims import SpineVariants
    from needleguide.fluoro import CArmGeometry, Fluoroscope, make_settings
    from needleguide.lab.eval_levels_cases import make_case
    from needleguide.lab.eval_levels_spine import _phantom, ct_patient

    if ct:
        p0, rng = _phantom(seed, SpineVariants("none", "12"), spacing_mm=1.5)
        with tempfile.TemporaryDirectory() as d:
            p = ct_patient(p0, float(rng.uniform(1.0, 5.0)), seed, d)
        p = p.__class__(**{**p.__dict__, "meta": {**p.meta, "variants": p0.meta["variants"]}})
    else:
        p, rng = _phantom(seed)
    fl = Fluoroscope(p, make_settings(geometry=CArmGeometry(pixels=256)), seed=seed)
    out = []
    for _ in range(frames):
        c = make_case(p, rng, seed, 256, fluoroscope=fl)
        f = c.frame
        out.append(dict(pixels=f.pixels.astype(np.float32), spacing=f.spacing_mm,
                        settings=f.settings, I2P=f.ImageToPatient, view=c.view,
                        truth=c.truth, anchors=c.anchors, region=c.region,
                        variant=c.variant, transitional=c.transitional,
                        order=list(p.vertebrae), rib=p.meta["variants"]["rib_bearing"]))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(out))
    return out


def frame_of(d: dict):
    from needleguide.frame import Frame

    return Frame(pixels=d["pixels"], spacing_mm=d["spacing"], ImageToPatient=d["I2P"],
                 time_s=0.0, modality="fluoro", settings=d["settings"])


def fit_disc_filter(fit: list[dict], cols: dict, n_examples: int):
    """Linear pre-filter and network of the disc detector, from the fitting frames."""
    from needleguide.guidance.levels_discs import DiscFilter
    from needleguide.guidance.levels_fit import disc_examples, fit_logistic, fit_mlp, truth_rows

    rng = np.random.default_rng(0)
    X, Y = [], []
    for d in fit:
        col = cols[id(d)]
        x, y = disc_examples(col, truth_rows(col, d["truth"]), d["order"], rng)
        if len(y):
            X.append(x)
            Y.append(y)
    X, Y = np.concatenate(X), np.concatenate(Y)
    if len(Y) > n_examples:  # a seeded subset keeps the network's fit to minutes
        keep = np.random.default_rng(1).choice(len(Y), n_examples, replace=False)
        X, Y = X[keep], Y[keep]
    lw, lb = fit_logistic(X, Y, 1e-3)
    W1, b1, w2, b2 = fit_mlp(X, Y, 48, 1e-4, seed=0)
    return DiscFilter(lw, lb, W1, b1, w2, b2)


def fit_centre(fit: list[dict], cols: dict, chains: dict, hidden: int):
    """The body-centre scorer (``levels_centre.CentreNet``) from the fitting frames."""
    from needleguide.guidance.levels_centre import CentreNet, centre_examples
    from needleguide.guidance.levels_fit import fit_mlp

    X, Y = [], []
    for d in fit:
        verts, _, names = chains[id(d)]
        x, y = centre_examples(cols[id(d)], verts, names, d["truth"], frame_of(d))
        if len(y):
            X.append(x)
            Y.append(y)
    X, Y = np.concatenate(X), np.concatenate(Y)
    mu, sd = X.mean(axis=0), X.std(axis=0) + 1e-3
    W1, b1, w2, b2 = fit_mlp((X - mu) / sd, Y, hidden, 1e-4, seed=0)
    return CentreNet(mu, sd, W1, b1, w2, b2)


def centre_error(cal: list[dict], cols: dict, chains: dict, net) -> tuple[float, ...]:
    """Median and 90th percentile of |across error| (pitch units) of the moved labels and
    of the path alone, on lateral and oblique calibration vertebrae."""
    from needleguide.guidance.levels_centre import across_mm, body_offsets
    from needleguide.guidance.levels_column import WORK_MM

    e_net, e_path = [], []
    for d in cal:
        verts, _, names = chains[id(d)]
        f = frame_of(d)
        u = body_offsets(cols[id(d)], verts, f, net)
        if not np.any(u):
            continue
        for v, nm, uk in zip(verts, names, u, strict=True):
            if nm in d["truth"]:
                a, along = across_mm(cols[id(d)], v.t, d["truth"][nm])
                if abs(along) * WORK_MM < 0.3 * v.pitch_mm:
                    e_net.append(abs(a - uk) / v.pitch_mm)
                    e_path.append(abs(a) / v.pitch_mm)
    if not e_net:
        return (np.nan,) * 4
    return (float(np.median(e_net)), float(np.percentile(e_net, 90)),
            float(np.median(e_path)), float(np.percentile(e_path, 90)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="100-339", help="first-last tuning seed (< 1000)")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--ct-seeds", default="400-429", help="first-last tuning seeds rendered "
                    "through the CT path (synthetic CT, 1-5 mm slices, import-ct)")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--centre-hidden", type=int, default=24)
    ap.add_argument("--disc-examples", type=int, default=90000)
    ap.add_argument("--reuse-disc", type=Path, default=None,
                    help="take the disc filter of this model file instead of fitting it")
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1]
                    / "src/needleguide/guidance/data/levels_spine.npz")
    a = ap.parse_args()
    lo, hi = (int(x) for x in a.seeds.split("-"))
    if hi >= 1000 or any(int(x) >= 1000 for x in a.ct_seeds.split("-") if x):
        raise SystemExit("tuning seeds must stay below 1000 (held out from 1000)")
    from needleguide.guidance import levels_spine as LS
    from needleguide.guidance.levels_column import column
    from needleguide.guidance.levels_discs import find_discs
    from needleguide.guidance.levels_fit import (
        fit_logistic,
        fit_softmax_mlp,
        fit_temperature,
        vertebra_names,
    )
    from needleguide.guidance.levels_vertebra import features, vertebrae

    t0 = time.time()
    seeds = list(range(lo, hi + 1))
    cut = lo + int(0.75 * len(seeds))
    data = {s: render_seed(s, a.frames, a.cache) for s in seeds}
    ct_seeds = []
    if a.ct_seeds:
        c0, c1 = (int(x) for x in a.ct_seeds.split("-"))
        ct_seeds = list(range(c0, c1 + 1))
    ct_data = {s: render_seed(s, a.frames, a.cache, ct=True) for s in ct_seeds}
    print(f"{sum(map(len, data.values()))} phantom frames from {len(seeds)} seeds, "
          f"{sum(map(len, ct_data.values()))} CT frames from {len(ct_seeds)} "
          f"({time.time() - t0:.0f} s)", flush=True)
    ct_cut = ct_seeds[0] + int(0.75 * len(ct_seeds)) if ct_seeds else 0
    fit = [d for s in seeds if s < cut for d in data[s]] + \
        [d for s in ct_seeds if s < ct_cut for d in ct_data[s]]
    cal = [d for s in seeds if s >= cut for d in data[s]] + \
        [d for s in ct_seeds if s >= ct_cut for d in ct_data[s]]
    cols = {id(d): column(frame_of(d)) for d in fit + cal}

    # 1. disc filter (or the one of an earlier fit, --reuse-disc)
    if a.reuse_disc is not None:
        disc = LS.load_model(str(a.reuse_disc)).disc
    else:
        disc = fit_disc_filter(fit, cols, a.disc_examples)
    print(f"disc filter ({time.time() - t0:.0f} s)", flush=True)

    # 2. vertebra classifier
    def chain(d):
        col = cols[id(d)]
        n = col.strip.shape[0]
        valid = np.isfinite(col.strip[:, col.strip.shape[1] // 2])
        D = find_discs(col.strip, disc)
        verts = vertebrae(D.t, D.pitch_mm, n, valid)
        return verts, features(col, verts, frame_of(d)), \
            vertebra_names(col, verts, d["truth"], d["order"])

    chains = {id(d): chain(d) for d in fit + cal}
    Xc, Yc = [], []
    for d in fit:
        if d["transitional"]:
            continue
        _, F, names = chains[id(d)]
        for x, nm in zip(F, names, strict=True):
            if nm is not None and nm in LS.NAMES:
                Xc.append(x)
                Yc.append(LS.class_of(nm))
    Xc, Yc = np.asarray(Xc), np.asarray(Yc)
    cnt = np.bincount(Yc, minlength=len(LS.CLASSES))
    mu, sd = Xc.mean(axis=0), Xc.std(axis=0) + 1e-3
    sw = 1.0 / np.sqrt(np.maximum(cnt[Yc], 1))
    H, hb, Wc, bc = fit_softmax_mlp((Xc - mu) / sd, Yc, len(LS.CLASSES), a.hidden, 1e-3, sw)
    prior = np.bincount(Yc, weights=sw, minlength=len(LS.CLASSES))
    prior = np.maximum(prior / prior.sum(), 1e-4)
    m = LS.SpineModel(disc, mu, sd, Wc, bc, prior, 1.0, np.array([1.0, 0.0]), 0.7, H, hb)
    print(f"classifier: {len(Yc)} vertebrae, classes {cnt.tolist()} "
          f"({time.time() - t0:.0f} s)", flush=True)

    # 3. body-centre scorer (lateral and oblique views, every anatomy)
    centre = fit_centre(fit, cols, chains, a.centre_hidden)
    err = centre_error(cal, cols, chains, centre)
    print(f"centre scorer: calibration-set |across error| median / p90 "
          f"{err[0]:.2f} / {err[1]:.2f} pitch (path alone {err[2]:.2f} / {err[3]:.2f}) "
          f"({time.time() - t0:.0f} s)", flush=True)

    # 4. temperature and calibration (calibration seeds, all anatomy)
    pairs, rows, probs = [], [], []
    for d in cal:
        _, F, names = chains[id(d)]
        if len(F) == 0:
            continue
        P = LS.class_probs(F, m)
        L = np.log(np.clip(P, 1e-6, 1)) - np.log(m.prior)[None, :]
        n = len(F)
        idx = np.arange(len(LS.NAMES) - n + 1)[:, None] + np.arange(n)[None, :]
        S = L[np.arange(n)[None, :], LS.STATE_CLASS[idx]].sum(axis=1)
        offs = [LS.NAMES.index(nm) - k for k, nm in enumerate(names) if nm in LS.NAMES]
        if offs:
            o = max(set(offs), key=offs.count)
            if 0 <= o < len(S):
                pairs.append((S, o))
        rows.append((S, names))
        probs.append(P)
    tau = fit_temperature(pairs)
    xs, ys = {True: [], False: []}, {True: [], False: []}
    for (S, names), P in zip(rows, probs, strict=True):
        z = S * tau
        post = np.exp(z - z.max())
        post /= post.sum()
        o = int(np.argmax(post))
        _, conflict = LS.anchors(P, o, 0.7)
        sup, _ = LS.anchors(P, o, 0.5)
        key = bool(sup) and not conflict
        p = float(np.clip(post[o], 1e-6, 1 - 1e-6))
        for k, nm in enumerate(names):
            if LS.NAMES[o + k] in LS.REAL:
                xs[key].append([np.log(p / (1 - p))])
                ys[key].append(float(LS.NAMES[o + k] == nm))
    cal_ab = []
    for key in (True, False):
        ca, cb = fit_logistic(np.asarray(xs[key]), np.asarray(ys[key]), 1e-4)
        cal_ab += [ca[0], cb]
    m = LS.SpineModel(disc, mu, sd, Wc, bc, prior, tau, np.asarray(cal_ab), 0.7, H, hb,
                      centre)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    LS.save_model(m, a.out)
    print(f"tau {tau:.3f}, calibration {np.round(cal_ab, 3).tolist()}; wrote {a.out} "
          f"({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
