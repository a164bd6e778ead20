"""Random damage to a file's bytes, for the fuzzing tests (hypothesis strategies)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
Mutation = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 7)),
    st.tuples(st.just("header"), st.integers(0, 63), st.integers(0, 255)),
)


def mutate(data: bytes, mutation) -> bytes:
    """Cut the bytes short, flip one bit, or overwrite one byte of the first 64."""
    b = bytearray(data)
    if mutation[0] == "truncate":
        return bytes(b[: int(mutation[1] * len(b))])
    if mutation[0] == "flip":
        i = min(int(mutation[1] * len(b)), len(b) - 1)
        b[i] ^= 1 << mutation[2]
        return bytes(b)
    b[min(mutation[1], len(b) - 1)] = mutation[2]
    return bytes(b)
