"""``needleguide us``: a standard ultrasound view of the phantom (us.png + frame.json), and
with ``--needle-to LANDMARK`` an in-plane needle advance (advance.mp4); with ``--dicom``
also one DICOM study (dicom/US0001.dcm the still, dicom/US0002.dcm the advance cine)."""

from __future__ import annotations

from pathlib import Path

import typer

from needleguide.cli._common import console


def in_plane_needle(patient, view, settings, target_mm, gauge: int = 22):
    """An in-plane needle aimed at the projection of ``target_mm`` on the image plane, from
    beyond the end of the probe on the target's side (lateral to medial), at most 45° steep
    and entering at least 5 mm beyond the probe's end; the skin entry is found along that
    line."""
    import numpy as np

    from needleguide import geometry
    from needleguide.scene import Needle

    P2P = view.ProbeToPatient
    t_p = geometry.apply(geometry.invert(P2P), target_mm)
    t_p[2] = 0.0  # in plane: aim at the landmark's projection on the image plane
    target_mm = geometry.apply(P2P, t_p)
    half = settings.spec.width_mm / 2 if settings.probe == "linear" else \
        settings.spec.radius_mm * np.sin(settings.spec.sector_rad / 2)
    side = -1.0 if t_p[0] < 0 else 1.0
    # at most 45° steep, entering at least 5 mm beyond the end of the probe
    x_e = t_p[0] + side * max(t_p[1], half + 5.0 - side * t_p[0])
    out_p = np.array([x_e, 0.0, 0.0]) + 30.0 * np.array([x_e - t_p[0], -t_p[1], 0.0]) \
        / np.hypot(x_e - t_p[0], t_p[1])
    far = geometry.apply(P2P, out_p)
    d = far - np.asarray(target_mm, float)
    n = float(np.linalg.norm(d))
    steps = np.arange(0.0, n, 0.5)
    lab = patient.label_at(np.asarray(target_mm)[None] + steps[:, None] * (d / n)[None])
    air = np.nonzero(lab == 0)[0]
    entry = np.asarray(target_mm) + (steps[air[0]] if air.size else n) * d / n
    path = float(np.linalg.norm(np.asarray(target_mm) - entry))
    length = float(np.clip(np.ceil((path + 15) / 10) * 10, 50, 200))
    return Needle.from_entry_and_target(entry, target_mm, gauge=gauge, length_mm=length,
                                        inserted_mm=1e-3)


def iter_advance(patient, view, settings, target_mm, n: int, seed: int, start: float = 0.0,
                 rate_hz: float = 15.0):
    """(inserted mm, path mm, Frame without truth) for ``n`` frames of an in-plane needle
    advanced to ``target_mm`` in equal steps from ``start`` of the way (0–1) to the
    target, at ``rate_hz`` frames/s; rendered one at a time."""
    import numpy as np

    from needleguide.scene import Scene
    from needleguide.us import USImager

    imager = USImager(settings, seed=seed)
    nd0 = in_plane_needle(patient, view, settings, target_mm)
    total = float(np.linalg.norm(np.asarray(target_mm) - nd0.skin_entry_mm))
    scene = Scene(patient, poses={"ProbeToPatient": view.ProbeToPatient})
    for i in range(n):
        ins = total * (start + (1.0 - start) * (i + 1) / n)
        nd = nd0.advanced(ins - nd0.inserted_length_mm)
        yield ins, total, imager.render(scene.with_needle(nd).with_time(i / rate_hz),
                                        view=view.to_json()).without_truth()


def advance_frames(patient, view, settings, target_mm, n: int, seed: int, start: float = 0.0,
                   rate_hz: float = 15.0) -> list:
    """The frames of :func:`iter_advance`, as a list."""
    return [f for _, _, f in iter_advance(patient, view, settings, target_mm, n, seed, start,
                                          rate_hz)]


def _tgc(tgc: str | None) -> list[float] | None:
    from needleguide.errors import UserError

    if tgc is None:
        return None
    if tgc.strip().lower() == "off":
        return []
    try:
        return [float(x) for x in tgc.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--tgc: expected comma-separated dB values or 'off', got {tgc!r}") \
            from None


def register(app: typer.Typer) -> None:
    from needleguide.cli._common import FORCE_HELP, SEED_HELP

    @app.command("us")
    def us_cmd(
        region: str = typer.Option("lumbar", help="Phantom region: lumbar | cervical."),
        view: str = typer.Option("paramedian-sagittal", help="Standard view name."),
        side: str = typer.Option("right", help="right | left."),
        level: str = typer.Option(None, help="Vertebra or segment, e.g. L4-L5, L5, C6."),
        bmi: float = typer.Option(24.0, help="Body-mass index (kg/m², 15–60)."),
        degeneration: int = typer.Option(0, help="0 none … 3 severe."),
        seed: int = typer.Option(0, help=SEED_HELP + " (anatomy and speckle)."),
        probe: str = typer.Option(None, help="linear | curvilinear (default: the view's)."),
        freq: float = typer.Option(None, help="Centre frequency (MHz), within the band "
                                              "(default: the view preset's)."),
        depth: float = typer.Option(None, help="Imaging depth (mm)."),
        gain: float = typer.Option(0.0, help="Overall gain (dB)."),
        focus: float = typer.Option(None, help="Transmit focal depth (mm; default target)."),
        dr: float = typer.Option(60.0, help="Dynamic range (dB)."),
        noise_db: float | None = typer.Option(
            None, "--noise-db", help="Receiver noise, dB re muscle speckle at the face "
            "(default -70)."),
        tgc: str = typer.Option(None, help="TGC dB values from top to bottom, comma separated"
                                           " ('off' = none; default: automatic)."),
        steer: float = typer.Option(0.0, help="Beam steering (deg, linear probe)."),
        speckle_subcell: bool = typer.Option(
            False, "--speckle-subcell", help="Scatterers blended between lattice cells, "
            "boundaries between label voxels and the partial volume of edges under a line: "
            "the image follows tremor-sized probe moves (a frame ≈ 2× slower)."),
        doppler: bool = typer.Option(False, help="Colour Doppler box over the image centre."),
        prf: float = typer.Option(4000.0, help="Doppler PRF (Hz)."),
        needle_to: str = typer.Option(None, help="Landmark: write an in-plane needle advance"
                                                 " (advance.mp4)."),
        frames: int = typer.Option(40, help="Frames of the needle advance (2–600)."),
        dicom: bool = typer.Option(False, "--dicom",
                                   help="Also write DICOM (Ultrasound Multi-frame Image "
                                        "Storage, one study) into DIR/dicom/."),
        out: Path = typer.Option(..., help="Output folder."),
        force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    ) -> None:
        """Simulate a B-mode image of a standard view: DIR/us.png, DIR/frame.json."""
        import numpy as np

        from needleguide.anatomy.phantom import build_model
        from needleguide.cli._common import (
            announce_compile,
            check_landmark,
            check_level,
            writing,
        )
        from needleguide.errors import UserError, check_choice, check_range, check_seed
        from needleguide.us import make_settings
        from needleguide.us.views import VIEW_INFO, VIEWS, standard_view

        # every argument is checked before anything is built, rendered or written
        check_choice("--view", view, VIEWS)
        if VIEW_INFO[view][0] != region:
            raise UserError(f"--view: {view!r} belongs to the {VIEW_INFO[view][0]} region, "
                            f"not {region!r}")
        check_choice("--side", side, ("right", "left"))
        check_range("--frames", frames, 2, 600)
        check_seed(seed)
        tgc_list = _tgc(tgc)
        make_settings(probe=probe or VIEW_INFO[view][1], frequency_mhz=freq, gain_db=gain,
                      dynamic_range_db=dr, steer_deg=steer, prf_hz=prf, tgc_db=tgc_list,
                      noise_db_re_face=noise_db)
        model = build_model(region, bmi=bmi, degeneration=degeneration, seed=seed,
                            spacing_mm=1.5)
        if level is not None:
            check_level(model.vertebrae, level)
        if needle_to is not None:
            check_landmark(model.landmarks, needle_to, "--needle-to")
        with writing(out, "us", force) as d:
            announce_compile("needleguide.anatomy", "needleguide.us", about="1 min")
            console.print(f"building the {region} phantom (BMI {bmi:g}) …")
            patient = model.to_patient()
            v = standard_view(patient, view, level=level, side=side, probe=probe,
                              depth_mm=depth)
            box = [-12.0, 12.0, 0.15 * v.depth_mm, 0.75 * v.depth_mm] if doppler else None
            fmm = focus if focus is not None else \
                float(np.clip(v.target_depth_mm, 5, 0.95 * v.depth_mm))
            s = make_settings(probe=v.probe, frequency_mhz=freq if freq is not None else
                              v.frequency_mhz, depth_mm=v.depth_mm, gain_db=gain,
                              focus_mm=fmm, dynamic_range_db=dr, tgc_db=tgc_list,
                              steer_deg=steer, noise_db_re_face=noise_db, doppler=box,
                              prf_hz=prf, speckle_subcell=speckle_subcell)
            study = None
            if dicom:
                from needleguide.io.dicom_study import phantom_study

                study = phantom_study(region, bmi, seed, f"ultrasound {view}")
            wrote = _write(d, patient, v, s, seed, view, side, bmi, needle_to, frames, study)
        console.print(f"wrote {', '.join(str(out / w) for w in wrote)}", soft_wrap=True,
                      highlight=False)


def _write(d: Path, patient, v, s, seed: int, view: str, side: str, bmi: float,
           needle_to: str | None, frames: int, study=None) -> list[str]:
    """us.png, frame.json and, with a needle target, advance.mp4 into ``d``; with a DICOM
    ``study`` also dicom/US0001.dcm (the still) and dicom/US0002.dcm (the advance)."""
    import imageio.v2 as imageio

    from needleguide.atomic import atomic_path, write_text
    from needleguide.scene import Scene
    from needleguide.us import USImager
    from needleguide.us.display import screen

    imager = USImager(s, seed=seed)
    scene = Scene(patient, poses={"ProbeToPatient": v.ProbeToPatient})
    frame = imager.render(scene, view=v.to_json())
    title = f"{view} {v.level or ''} {side}  BMI {bmi:g}"
    with atomic_path(d / "us.png") as tmp:
        imageio.imwrite(tmp, screen(frame, title))
    write_text(d / "frame.json", frame.to_json())
    dicom = []
    if study is not None:
        from needleguide.io.dicom_us import write_us_cine

        write_us_cine(d / "dicom" / "US0001.dcm", study, [frame], 1, title)
        dicom = ["dicom/US0001.dcm"]
    if needle_to is None:
        return ["us.png", "frame.json", *dicom]
    console.print(f"advancing the needle to {needle_to} ({frames} frames) …")
    cine = []
    with atomic_path(d / "advance.mp4") as tmp:
        w = imageio.get_writer(tmp, fps=15, codec="libx264", quality=7,
                               macro_block_size=2, format="FFMPEG")
        try:
            for ins, total, f in iter_advance(patient, v, s, patient.landmark(needle_to),
                                              frames, seed):
                img = screen(f, f"{title}  needle {ins:.0f}/{total:.0f} mm -> {needle_to}")
                if study is not None:
                    cine.append(f)
                h, wd = img.shape[:2]
                w.append_data(img[: h - h % 2, : wd - wd % 2])
        finally:
            w.close()
    if study is not None:
        write_us_cine(d / "dicom" / "US0002.dcm", study, cine, 2,
                      f"{title}  needle -> {needle_to}")
        dicom.append("dicom/US0002.dcm")
    return ["us.png", "frame.json", "advance.mp4", *dicom]
