"""The Python agent's names are the Node agent's: every value must appear in common/conventions.ts."""

import os
import re

from stallscope_agent import conventions

from conftest import REPO


def test_every_name_is_in_the_shared_conventions():
    ts = open(os.path.join(REPO, "common", "conventions.ts"), encoding="utf8").read()
    # String literals in assignments and lists (comments hold apostrophes too).
    known = set(re.findall(r"[=:\[,]\s*'([^'\n]+)'", ts))
    values = {k: v for k, v in vars(conventions).items() if k.isupper() and isinstance(v, str)}
    assert len(values) > 50
    missing = {k: v for k, v in values.items() if v not in known}
    assert missing == {}
    assert set(conventions.LOOP_DELAY_STATS) <= known
