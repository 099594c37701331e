from needleguide.cli import run

run()
