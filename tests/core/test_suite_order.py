"""`LONGEST_FIRST` (tests/conftest.py) is said to be stale when a file outside it outgrows the files in it."""

from support import outgrown

LISTED = ("tests/a.py", "tests/b.py")


def test_a_file_outside_the_list_taking_half_again_as_long_as_its_shortest_file_is_named() -> None:
    seconds = {"tests/a.py": 100.0, "tests/b.py": 20.0, "tests/c.py": 31.0, "tests/d.py": 45.0}
    assert outgrown(seconds, LISTED) == [(45.0, "tests/d.py"), (31.0, "tests/c.py")]


def test_files_outside_the_list_within_half_again_of_its_shortest_are_not_named() -> None:
    seconds = {"tests/a.py": 100.0, "tests/b.py": 20.0, "tests/c.py": 30.0, "tests/d.py": 5.0}
    assert outgrown(seconds, LISTED) == []
