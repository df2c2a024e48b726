"""A window of loop-thread samples as a pprof profile.proto, encoded by hand (the format is small
and only written here). The shape follows docs/conventions.md ("Loop CPU profiles"), as the Node
agent writes it: one Sample per stack sample, leaf first, with its `timestamp` label; each
Location's Mapping says whose code it is."""

from .conventions import PROFILE_ORIGINS, PROFILE_TIMESTAMP_LABEL
from .profiler import describe


def _varint(out, v):
    while v > 127:
        out.append((v & 127) | 128)
        v >>= 7
    out.append(v)


def _uint(out, field, v):
    """A varint field, left out when 0 as proto3 does."""
    if v:
        _varint(out, field << 3)
        _varint(out, v)


def _bytes(out, field, b):
    _varint(out, (field << 3) | 2)
    _varint(out, len(b))
    out += b


def _packed(out, field, values):
    if values:
        inner = bytearray()
        for v in values:
            _varint(inner, v)
        _bytes(out, field, inner)


class Strings:
    """The string table: index 0 is ""."""

    def __init__(self):
        self.index = {"": 0}

    def __call__(self, s):
        i = self.index.get(s)
        if i is None:
            i = self.index[s] = len(self.index)
        return i


def encode(window):
    """`window`: a profiler.Window. Returns the uncompressed profile.proto bytes. Runs on the
    exporter thread: looking frames up (files, whose code) is left to here."""
    strings = Strings()
    out = bytearray()

    def value_type(type_, unit):
        w = bytearray()
        _uint(w, 1, strings(type_))
        _uint(w, 2, strings(unit))
        return w

    _bytes(out, 1, value_type("samples", "count"))
    _bytes(out, 1, value_type("cpu", "nanoseconds"))
    period = max(1, int(round(window.period_ns)))
    key, unit = strings(PROFILE_TIMESTAMP_LABEL), strings("nanoseconds")
    for ts, stack_id in window.samples:
        label = bytearray()
        _uint(label, 1, key)
        _uint(label, 3, ts)
        _uint(label, 4, unit)
        s = bytearray()
        _packed(s, 1, window.stacks[stack_id])
        _packed(s, 2, [1, period])
        _bytes(s, 3, label)
        _bytes(out, 2, s)
    mapping_ids = {}
    for i, origin in enumerate(PROFILE_ORIGINS, 1):
        mapping_ids[origin] = i
        m = bytearray()
        _uint(m, 1, i)
        _uint(m, 5, strings(origin))
        _uint(m, 7, 1)  # has_functions
        _uint(m, 8, 1)  # has_filenames
        _uint(m, 9, 1)  # has_line_numbers
        _bytes(out, 3, m)
    functions = {}
    for loc_id, (code, at) in enumerate(window.codes, 1):
        name, path, line, first_line, origin = describe(code, at)
        fn_key = (name, path, first_line)
        fn_id = functions.get(fn_key)
        if fn_id is None:
            fn_id = functions[fn_key] = len(functions) + 1
            f = bytearray()
            _uint(f, 1, fn_id)
            _uint(f, 2, strings(name))
            _uint(f, 3, strings(name))
            _uint(f, 4, strings(path))
            _uint(f, 5, max(0, first_line))
            _bytes(out, 5, f)
        ln = bytearray()
        _uint(ln, 1, fn_id)
        _uint(ln, 2, max(0, line))
        loc = bytearray()
        _uint(loc, 1, loc_id)
        _uint(loc, 2, mapping_ids[origin])
        _bytes(loc, 4, ln)
        _bytes(out, 4, loc)
    _uint(out, 9, window.start_ns)
    _uint(out, 10, window.end_ns - window.start_ns)
    _bytes(out, 11, value_type("cpu", "nanoseconds"))
    _uint(out, 12, period)
    _packed(out, 13, [strings(c) for c in window.comments])
    _uint(out, 14, strings("cpu"))
    # Last, once every string is in it.
    for text in strings.index:
        _bytes(out, 6, text.encode("utf-8", "replace"))
    return bytes(out)
