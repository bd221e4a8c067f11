"""TempoMaster node pack for ComfyUI (next-frame-rate long-video generation).

ComfyUI imports this file as the package of the ``custom_nodes/<folder>``
directory. It exposes the node classes of ``nodes/`` (``NODE_CLASS_MAPPINGS``), the web directory, makes
the bundled runtime ``tempomaster_core`` importable without installing it, and registers the web view's
HTTP route on ComfyUI's server (``nodes.plan_route.register_routes``; nothing happens outside ComfyUI).
"""

import importlib
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _import_core() -> None:
    """Import the bundled ``tempomaster_core`` (top-level name) unless one is already imported.

    The pack's folder is put on ``sys.path`` only for this import and removed
    again, so its other folders (``nodes``, ``tests``, ``tools``) never shadow
    other modules (ComfyUI has its own ``nodes`` module).
    """
    if "tempomaster_core" in sys.modules:
        return
    sys.path.insert(0, _HERE)
    try:
        importlib.import_module("tempomaster_core")
    finally:
        try:
            sys.path.remove(_HERE)
        except ValueError:
            pass


_import_core()

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402
from .nodes.plan_route import register_routes  # noqa: E402

WEB_DIRECTORY = "./web"

register_routes()  # POST /tempomaster/plan for the tree view (ComfyUI's PromptServer exists by now)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
