"""Variants of the checkpoints loaded so far, keyed by file identity, for cost estimates made
before a prompt runs (reading a checkpoint's keys just to estimate would cost seconds)."""
import os

_variants = {}


def _key(path):
    st = os.stat(path)
    return (os.path.realpath(path), st.st_size, st.st_mtime_ns)


def remember(path, variant):
    _variants[_key(path)] = variant


def lookup(path):
    try:
        return _variants.get(_key(path))
    except OSError:
        return None
