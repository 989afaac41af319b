"""`make_drill`: a real ComfyUI with the journal drill pack (tests/persistence/journal_drill.py)."""
from __future__ import annotations

import pytest

from tests.persistence.journal_drill import JournalDrill


@pytest.fixture
def make_drill(comfy_factory):
    def make(**env):
        server = comfy_factory(env={k.upper(): str(v) for k, v in env.items()}, checkpoint=False, start=False)
        drill = JournalDrill(server)
        server.start()
        return drill

    return make
