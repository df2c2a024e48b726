"""Frames: which one is the user's own code, how a site is named, whose code a stack shows."""

import functools
import os
import sys
import sysconfig

_AGENT_DIR = os.path.dirname(os.path.abspath(__file__))
_STDLIB = {os.path.realpath(p) for p in {sysconfig.get_paths().get("stdlib"), sysconfig.get_paths().get("platstdlib")} if p}
MAX_FRAMES = 30


@functools.lru_cache(maxsize=4096)
def _kind(filename):
    """user, library (site-packages), stdlib (and <frozen ...>), or agent; cached per file."""
    if filename.startswith(_AGENT_DIR):
        return "agent"
    if "site-packages" in filename or "dist-packages" in filename:
        return "library"
    if filename.startswith("<"):
        return "stdlib"
    real = os.path.realpath(filename)
    return "stdlib" if any(real.startswith(p + os.sep) for p in _STDLIB) else "user"


def _is_stdlib(filename):
    return _kind(filename) == "stdlib"


def is_agent(filename):
    return _kind(filename) == "agent"


def is_user(filename):
    return _kind(filename) == "user"


_ORIGINS = {"user": "app", "library": "dependency", "stdlib": "runtime", "agent": "telemetry"}


def file_origin(filename):
    """Whose code a file is, as a loop profile's locations say it: app, dependency, runtime, telemetry."""
    return _ORIGINS[_kind(filename)]


def frames_of(frame, limit=MAX_FRAMES):
    """(function, file, line) innermost first."""
    out = []
    while frame is not None and len(out) < limit:
        code = frame.f_code
        out.append((code.co_name, code.co_filename, frame.f_lineno))
        frame = frame.f_back
    return out


def top_user(frames):
    """The first frame of user code; without one, the first of a library, else the innermost."""
    for f in frames:
        if is_user(f[1]):
            return f
    for f in frames:
        if not _is_stdlib(f[1]) and not is_agent(f[1]):
            return f
    return frames[0] if frames else None


def origin(frames):
    """As stallscope.block.origin: app, telemetry (the agent alone), dependency, runtime."""
    if any(is_user(f[1]) for f in frames):
        return "app"
    code = [f for f in frames if not _is_stdlib(f[1])]
    if code and all(is_agent(f[1]) for f in code):
        return "telemetry"
    return "dependency" if code else "runtime"


def code_attributes(frames):
    from .conventions import CODE_FILE, CODE_FUNCTION, CODE_LINE, CODE_STACKTRACE

    attrs = {CODE_STACKTRACE: "\n".join(f"    at {fn} ({file}:{line})" for fn, file, line in frames[:MAX_FRAMES])}
    top = top_user(frames)
    if top:
        attrs[CODE_FUNCTION] = top[0]
        attrs[CODE_FILE] = os.path.abspath(top[1])
        attrs[CODE_LINE] = top[2]
    return attrs


@functools.lru_cache(maxsize=4096)
def relative(filename):
    """A path relative to the working directory when inside it, as lock sites are shown; cached
    per file, since hot locks name a site on every acquisition."""
    try:
        rel = os.path.relpath(filename)
    except ValueError:
        return filename
    return filename if rel.startswith("..") else rel


def caller_frame(skip=2):
    """The first frame of user code above the caller, or None."""
    frame = sys._getframe(skip)
    while frame is not None:
        if is_user(frame.f_code.co_filename):
            return frame
        frame = frame.f_back
    return None


def caller_site(skip=2):
    """`file:line` of the first user frame above the caller (the line that created a lock or a
    pool, which names it), and that frame; (None, None) without one."""
    frame = caller_frame(skip + 1)
    if frame is None:
        return None, None
    return f"{relative(frame.f_code.co_filename)}:{frame.f_lineno}", frame


def site_of(frame):
    """A lock site as both agents write it: `function (file:line)`."""
    return f"{frame.f_code.co_name} ({relative(frame.f_code.co_filename)}:{frame.f_lineno})"
