"""Hypothesis strategies shared by the fuzz tests: arbitrary bytes and mutated valid files.

A reader given any of these must return a result or raise yolo9000.errors.UserError; any other
exception is a crash. Imported only by tests that have already skipped without hypothesis."""
import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# 200 examples per reader (the floor), the same ones on every run so CI is
# repeatable; YOLO9000_FUZZ_EXAMPLES=N searches N fresh random ones for a deeper local hunt.
# No deadline: the machine is shared and loaded. The tests reuse one folder for all examples,
# overwriting its files, hence the health check.
_DEEP = int(os.environ.get("YOLO9000_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=_DEEP or 200, deadline=None, derandomize=not _DEEP,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

_DIGITS_AND_SYNTAX = b"0123456789-.e+,=[]<>{}\":# \n\x00\xff"


@st.composite
def mutated(draw, valid: bytes, max_edits=6):
    """``valid`` with a few random edits: bytes replaced, inserted (often digits or syntax
    characters, which reach deeper than random bytes), deleted, a chunk repeated, or the
    file cut short."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, max_edits))):
        op = draw(st.sampled_from(["replace", "insert", "delete", "repeat", "truncate"]))
        at = draw(st.integers(0, len(data)))
        if op == "replace" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            chunk = draw(st.binary(max_size=8) | st.lists(
                st.sampled_from(list(_DIGITS_AND_SYNTAX)), min_size=1, max_size=8).map(bytes))
            data[at:at] = chunk
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 16))]
        elif op == "repeat":
            end = min(len(data), at + draw(st.integers(1, 64)))
            data[at:at] = data[at:end]
        elif op == "truncate":
            del data[at:]
    return bytes(data)


def arbitrary_or_mutated(valid: bytes):
    return st.binary(max_size=512) | mutated(valid)
