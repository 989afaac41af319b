"""The pack's version, read once from pyproject.toml, its one source of truth (no copy in the code).

A regular expression on the `[project]` table instead of a TOML parser: `tomllib` only exists from
Python 3.11 and the pack supports 3.10 without extra dependencies. None when the file is not there
(the pack copied without its pyproject.toml).
"""
import os
import re

PYPROJECT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pyproject.toml")
_PROJECT_TABLE = re.compile(r"^\[project\][ \t]*$(.*?)(?=^\[|\Z)", re.M | re.S)
_VERSION_KEY = re.compile(r"""^version[ \t]*=[ \t]*(["'])([^"'\n]+)\1""", re.M)


def read_version(path=PYPROJECT):
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    table = _PROJECT_TABLE.search(text)
    found = table and _VERSION_KEY.search(table.group(1))
    return found.group(2) if found else None


VERSION = read_version()
