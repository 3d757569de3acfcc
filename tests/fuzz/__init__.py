"""
Fuzzing targets of the wire protocols (L{tests.fuzz.targets}), run by
C{make fuzz} under atheris (L{tests.fuzz.run}); the inputs that once
failed are kept in C{tests/fuzz/regressions/} and replayed by the default
suite (L{tests.test_fuzz_regressions}).
"""
