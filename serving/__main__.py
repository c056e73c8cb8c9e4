"""``python -m serving`` runs the ``understudy`` CLI."""

from serving.cli import main

main()
