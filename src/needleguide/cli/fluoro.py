"""``needleguide fluoro``: a clinical C-arm view of the phantom (fluoro.png + frame.json),
and with ``--needle-to LANDMARK`` the needle advancing under pulsed fluoroscopy
(advance.mp4 + advance.json); with ``--dicom`` also one DICOM study in dicom/ (XA objects
of the advance's beam-on pulses and of the spot image, and the dose report)."""

from __future__ import annotations

from pathlib import Path

import typer

from needleguide.cli._common import console


def register(app: typer.Typer) -> None:
    from needleguide.cli._common import DEFAULT_DISPLAY, DISPLAY_HELP, FORCE_HELP, SEED_HELP

    @app.command("fluoro")
    def fluoro_cmd(
        region: str = typer.Option("lumbar", help="Phantom region: lumbar | cervical | spine."),
        view: str = typer.Option("ap", help="ap | lateral | oblique-right | oblique-left | "
                                            "contralateral-oblique[-right|-left] | ferguson."),
        level: str = typer.Option("L4-L5", help="Vertebra or disc level, e.g. L4-L5, L5."),
        side: str = typer.Option("right", help="Needle side (contralateral oblique): "
                                               "right | left."),
        bmi: float = typer.Option(24.0, help="Body-mass index (kg/m²)."),
        seed: int = typer.Option(0, help=SEED_HELP + " (anatomy and quantum noise)."),
        aec: bool = typer.Option(None, "--aec/--no-aec",
                                 help="Automatic exposure control (default on): kVp and mA "
                                      "chosen per view from the patient. --no-aec: manual "
                                      "technique (--kvp, --ma; 70 kVp, 8 mA if not given)."),
        kvp: float = typer.Option(None, help="Manual tube voltage, 60–120 kVp (selects "
                                             "manual mode: AEC off)."),
        ma: float = typer.Option(None, help="Manual tube current during a pulse, mA "
                                            "(selects manual mode: AEC off)."),
        pulse_rate: float = typer.Option(15.0, help="Pulses per second: 7.5 | 15 | 30."),
        pixels: int = typer.Option(512, help="Detector matrix (64–1024)."),
        display: str = typer.Option(DEFAULT_DISPLAY, help=DISPLAY_HELP),
        spacing: float = typer.Option(1.0, help="Phantom voxel size (mm)."),
        needle_to: str = typer.Option(None, help="Landmark: also write the needle advance "
                                                 "(advance.mp4, advance.json)."),
        patient_dir: Path = typer.Option(None, "--patient",
                                         help="Render this patient folder (an `import-ct` "
                                              "or `phantom` output) instead of building "
                                              "the phantom; --region, --bmi and --spacing "
                                              "are then ignored."),
        dicom: bool = typer.Option(False, "--dicom",
                                   help="Also write DICOM (X-Ray Angiographic Image Storage "
                                        "and the radiation dose report, one study) into "
                                        "DIR/dicom/."),
        out: Path = typer.Option(..., help="Output folder."),
        force: bool = typer.Option(False, "--force", help=FORCE_HELP),
    ) -> None:
        """Simulate a fluoroscopy image of a named C-arm view: DIR/fluoro.png (spot image in
        the chosen display), DIR/fluoro_inverted.png (the other polarity), DIR/frame.json
        (geometry, settings, dose)."""
        from needleguide.cli._common import (
            announce_compile,
            check_display,
            check_landmark,
            check_level,
            writing,
        )
        from needleguide.errors import UserError, check_choice, check_seed
        from needleguide.fluoro import CArmGeometry, make_settings, named_view
        from needleguide.fluoro.carm import VIEWS

        # every argument is checked before anything is rendered or written
        check_choice("--view", view, VIEWS)
        check_choice("--side", side, ("right", "left"))
        check_seed(seed)
        check_display(display)
        manual = {k: v for k, v in (("kvp", kvp), ("ma", ma)) if v is not None}
        if manual and aec:
            raise UserError(f"--{'/--'.join(manual)}: a manual technique cannot be combined "
                            "with --aec (the automatic exposure control chooses kVp and mA); "
                            "drop --aec: --kvp/--ma alone select manual mode")
        settings = make_settings(**manual, aec=aec if aec is not None else not manual,
                                 pulse_rate=pulse_rate, display=display,
                                 geometry=CArmGeometry(pixels=pixels))
        model = None
        if patient_dir is not None:
            from needleguide.anatomy.folder import load_patient_dir

            console.print(f"loading the patient in {patient_dir} …")
            patient = load_patient_dir(patient_dir)
            region = str(patient.meta.get("region", "imported"))
            landmarks = patient.landmarks
        else:
            from needleguide.anatomy.phantom import build_model

            model = build_model(region, bmi=bmi, seed=seed, spacing_mm=spacing)
            landmarks = model.landmarks
        if view != "ferguson":  # Ferguson squares the L5-S1 disc whatever the level
            check_level(model.vertebrae if model is not None else patient.vertebrae, level)
        if needle_to:
            check_landmark(landmarks, needle_to, "--needle-to")
        if manual and aec is None:
            console.print("manual technique (--kvp/--ma given): automatic exposure control off")
        with writing(out, "fluoro", force) as d:
            announce_compile("needleguide.anatomy", "needleguide.fluoro", about="1 min")
            if model is not None:
                console.print(f"building the {region} phantom (BMI {bmi:g}) …")
                patient = model.to_patient()
            carm = named_view(patient, view, level, side=side, geometry_=settings.geometry)
            study = _study(region, bmi, seed, patient_dir) if dicom else None
            frame, dose = _write(d, patient, settings, carm, seed, needle_to, region, level,
                                 study)
        console.print(f"wrote {out / 'fluoro.png'} ({frame.settings['projection']}, "
                      f"{display}); DAP {dose.dap_gy_cm2 * 1000:.2f} mGy·cm², "
                      f"K_ref {dose.air_kerma_mgy:.3f} mGy", soft_wrap=True, highlight=False)


def _study(region: str, bmi: float, seed: int, patient_dir: Path | None):
    """The run's DICOM study: the phantom, or the patient folder."""
    from needleguide.io.dicom_study import new_study, phantom_study

    if patient_dir is None:
        return phantom_study(region, bmi, seed, "fluoroscopy")
    name = Path(patient_dir).resolve().name or "patient"
    return new_study(f"{region} patient {name}: fluoroscopy", f"Patient^{name}",
                     f"NG-{name}")


def _write(d: Path, patient, settings, carm, seed: int, needle_to: str | None, region: str,
           level: str, study=None):
    """fluoro.png, fluoro_inverted.png, frame.json (+ advance.mp4, advance.json) into
    ``d``; with a DICOM ``study`` also dicom/ (:func:`_write_dicom`); returns the spot
    frame and the cumulative dose."""
    import imageio.v2 as imageio
    import numpy as np

    from needleguide.atomic import atomic_path, write_json
    from needleguide.fluoro import Fluoroscope
    from needleguide.fluoro.sequences import advance_sequence, plan_needle
    from needleguide.scene import Scene

    fl = Fluoroscope(patient, settings, seed=seed, carm=carm)
    scene = Scene(patient)
    pulses = []  # beam-on frames of the advance, for DICOM
    if needle_to:
        target = patient.landmark(needle_to)
        needle, target = plan_needle(patient, carm, target)
        frames = []
        tips = []
        console.print(f"advancing a {needle.gauge} G needle to {needle_to} …")
        for fr in advance_sequence(fl, scene, needle, target):
            frames.append((np.clip(fr.pixels, 0, 1) * 255).astype(np.uint8))
            tips.append({"time_s": round(fr.time_s, 4), "tip_px": fr.truth.tip_px,
                         "tip_mm": fr.truth.tip_mm,
                         "last_image_hold": bool(fr.settings.get("last_image_hold"))})
            if study is not None and not fr.settings.get("last_image_hold"):
                pulses.append(fr.without_truth())
            final = fr
        with atomic_path(d / "advance.mp4") as tmp:
            w = imageio.get_writer(tmp, format="FFMPEG", fps=settings.pulse_rate,
                                   codec="libx264", quality=8, macro_block_size=16)
            try:
                for f in frames:
                    w.append_data(f)
            finally:
                w.close()
        dose = fl.dose_total
        summary = {"landmark": needle_to, "target_mm": target.tolist(),
                   "skin_entry_mm": needle.skin_entry_mm.tolist(),
                   "needle": {"gauge": needle.gauge, "length_mm": needle.length_mm},
                   "frames": len(frames), "fps": settings.pulse_rate,
                   "cumulative_dose": {"air_kerma_mgy": dose.air_kerma_mgy,
                                       "dap_gy_cm2": dose.dap_gy_cm2,
                                       "fluoro_time_s": dose.fluoro_time_s},
                   "per_frame": tips}
        write_json(d / "advance.json", summary)
        scene = scene.with_needle(final_needle(final, needle, target))
    frame = fl.frame(scene, "spot", carm)
    with atomic_path(d / "fluoro.png") as tmp:
        imageio.imwrite(tmp, (np.clip(frame.pixels, 0, 1) * 255).astype(np.uint8),
                        format="PNG")
    # the other display polarity of the same exposure (collimated area stays black)
    field = fl._pose(carm).field
    inverted = np.clip(field - frame.pixels, 0, 1)
    with atomic_path(d / "fluoro_inverted.png") as tmp:
        imageio.imwrite(tmp, (inverted * 255).astype(np.uint8), format="PNG")
    meta = frame.metadata()
    meta["region"] = region
    meta["level"] = level
    meta["cumulative_dose"] = {"air_kerma_mgy": fl.dose_total.air_kerma_mgy,
                               "dap_gy_cm2": fl.dose_total.dap_gy_cm2,
                               "fluoro_time_s": fl.dose_total.fluoro_time_s}
    write_json(d / "frame.json", meta)
    if study is not None:
        _write_dicom(d / "dicom", study, fl, pulses, frame, needle_to)
    return frame, fl.dose_total


def _write_dicom(folder: Path, study, fl, pulses: list, spot, needle_to: str | None) -> None:
    """XA0001.dcm the advance's beam-on pulses (if any), then the spot image, and
    SR0001.dcm the radiation dose structured report of the run's exposures."""
    from needleguide.cli._dicom_out import write_dose_report
    from needleguide.io.dicom_xa import write_xa_run

    n = 0
    if pulses:
        n += 1
        write_xa_run(folder / f"XA{n:04d}.dcm", study, pulses, n,
                     f"needle advance to {needle_to}")
    n += 1
    write_xa_run(folder / f"XA{n:04d}.dcm", study, [spot], n,
                 f"spot {spot.settings.get('projection', '')}")
    write_dose_report(folder, study, [fl], 99)


def final_needle(frame, needle, target):
    """The needle with its tip at the target (the end of the advance)."""
    import numpy as np

    return needle.advanced(float(np.dot(np.asarray(target) - needle.tip, needle.axis)))
