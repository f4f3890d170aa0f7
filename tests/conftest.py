"""Make this checkout importable as ``ansible_collections.flora.deploy`` for every test."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COLLECTIONS = REPO / ".collections"


def ensure_collection_link() -> None:
    """The same link the Makefile creates: .collections/ansible_collections/flora/deploy -> checkout."""
    link = COLLECTIONS / "ansible_collections" / "flora" / "deploy"
    if not link.is_symlink() and not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(REPO)


ensure_collection_link()
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
