"""``gaffer engines``: each engine, whether its CLI is installed here, its version, and how to
install the missing ones (``scripts/install-engines``, pinned by ``tools/engines/``)."""

from __future__ import annotations

import os
from typing import Any

import typer

from gaffer.cli import context
from gaffer.cli.output import console, print_json, table
from gaffer.engines import ENGINES, engine_class
from gaffer.engines.base import EngineError
from gaffer.engines.discovery import cli_version, find_cli


def engine_views() -> list[dict[str, Any]]:
    """Every engine: ``name``, ``cli``, ``installed``, ``path``, ``version``, ``install``
    (how to install it when it is missing), looked up on ``$GAFFER_ENGINES_DIR/bin`` and then
    ``PATH``, as the ``local`` backend's workers see them."""
    settings = context.settings()
    search = os.pathsep.join([str(settings.engines_dir / "bin"), os.environ.get("PATH", "")])
    views = []
    for name in sorted(ENGINES):
        try:
            cls = engine_class(name)
        except (EngineError, ImportError) as exc:
            views.append(
                {
                    "name": name,
                    "cli": None,
                    "installed": False,
                    "path": None,
                    "version": None,
                    "install": f"the adapter cannot be loaded: {exc}",
                }
            )
            continue
        view: dict[str, Any] = {"name": name, "cli": cls.cli, "install": cls.install_hint}
        if cls.cli is None:
            view.update(installed=True, path=None, version=None)
        else:
            try:
                path = find_cli(cls.cli, path=search)
            except EngineError:
                view.update(installed=False, path=None, version=None)
            else:
                view.update(installed=True, path=path, version=cli_version(path))
        views.append(view)
    return views


def engines_command(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the engines, whether each is installed (with its version), and how to install it."""
    views = engine_views()
    if as_json:
        print_json(views)
        return
    rows = [
        (
            v["name"],
            v["cli"],
            "[green]yes[/green]" if v["installed"] else "[red]no[/red]",
            v["version"],
            v["path"],
        )
        for v in views
    ]
    console.print(table("engines", ["engine", "cli", "installed", "version", "path"], rows))
    for view in views:
        if not view["installed"]:
            console.print(f"  {view['name']}: install with {view['install']}", highlight=False)
