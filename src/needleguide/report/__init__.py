"""Session reports: one self-contained HTML file (images base64-embedded) and an MP4 of
the procedure. ``write_report(results, out_dir, title) -> Path``."""

from needleguide.report.html import write_report

__all__ = ["write_report"]
