"""``python -m node`` runs the ``waystation`` command."""

from node.app.cli import main

raise SystemExit(main())
