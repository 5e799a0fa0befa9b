"""``python -m sigmasight_assets.cli`` = the ``sigmasight`` command."""

from . import main

main()
