"""The agent lives inside someone else's process: its own failures are counted and named once on
stderr, never raised into the app."""

import sys
import _thread

_warned = set()
_lock = _thread.allocate_lock()
errors = {}


def report(component, err):
    with _lock:
        errors[component] = errors.get(component, 0) + 1
        first = component not in _warned
        _warned.add(component)
    if first:
        try:
            sys.stderr.write(f"stallscope: {component}: {type(err).__name__}: {err} (further errors here are only counted)\n")
        except Exception:
            pass


def warn_once(key, message):
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    try:
        sys.stderr.write(f"stallscope: {message}\n")
    except Exception:
        pass
