"""``needleguide advise``: rank US, FL, FL+DSA, CT and landmark guidance for a procedure."""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    @app.command("advise")
    def advise_cmd(
        procedure: str = typer.Option(..., "--procedure", help="Procedure id (see "
                                      "`needleguide procedures`)."),
        pregnant: bool = typer.Option(False, "--pregnant", help="Patient is pregnant."),
        age: float | None = typer.Option(None, "--age", help="Age in years (0-120)."),
        bmi: float | None = typer.Option(None, "--bmi", help="BMI, kg/m² (10-100)."),
        contrast_allergy: str = typer.Option("none", "--contrast-allergy",
                                             help="none | mild | severe"),
        egfr: float | None = typer.Option(None, "--egfr", help="eGFR, mL/min/1.73 m²."),
        diabetes: bool = typer.Option(False, "--diabetes"),
        anticoagulated: bool = typer.Option(False, "--anticoagulated"),
        degenerative: bool = typer.Option(False, "--degenerative",
                                          help="Degenerative spine."),
        hardware: bool = typer.Option(False, "--hardware", help="Spinal hardware."),
        level: str | None = typer.Option(None, "--level", help="e.g. L5-S1, C7."),
        us_experience: str = typer.Option("competent", "--us-experience",
                                          help="novice | competent | expert"),
        fluoro_experience: str = typer.Option("competent", "--fluoro-experience",
                                              help="novice | competent | expert"),
        no_us: bool = typer.Option(False, "--no-us", help="No ultrasound machine."),
        no_fluoro: bool = typer.Option(False, "--no-fluoro", help="No fluoroscope."),
        no_dsa: bool = typer.Option(False, "--no-dsa", help="No DSA."),
        no_ct: bool = typer.Option(False, "--no-ct", help="No CT."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
        cds_hooks: bool = typer.Option(False, "--cds-hooks",
                                       help="Print a CDS Hooks response (cards)."),
    ) -> None:
        """Rank every guidance modality 1-9 (ACR style) with evidence-cited reasons."""
        from needleguide.advisor import AdviceRequest, advise
        from needleguide.errors import UserError

        if as_json and cds_hooks:
            raise UserError("--json and --cds-hooks: choose one output format")
        req = AdviceRequest.build(
            procedure=procedure, pregnant=pregnant, age=age, bmi=bmi,
            contrast_allergy=contrast_allergy, egfr=egfr, diabetes=diabetes,
            anticoagulated=anticoagulated, degenerative=degenerative, hardware=hardware,
            level=level, us_experience=us_experience, fluoro_experience=fluoro_experience,
            has_us=not no_us, has_fluoro=not no_fluoro, has_dsa=not no_dsa, has_ct=not no_ct)
        advice = advise(req)
        if as_json:
            typer.echo(json.dumps(advice.to_json(), indent=2, ensure_ascii=False))
        elif cds_hooks:
            from needleguide.advisor.cds import to_cds_hooks

            typer.echo(json.dumps(to_cds_hooks(advice), indent=2, ensure_ascii=False))
        else:
            from needleguide.advisor.render import print_advice

            print_advice(advice)
