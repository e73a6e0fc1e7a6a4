"""``python -m lightning_noise.report DIR ...``: see :func:`lightning_noise.report.cli.main`."""

from lightning_noise.report.cli import main

if __name__ == "__main__":
    main()
