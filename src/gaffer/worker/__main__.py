"""``python -m gaffer.worker``: the worker process's entry point."""

from gaffer.worker.main import main

raise SystemExit(main())
