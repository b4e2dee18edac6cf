import pytest

from mm_magics.engine.errors import SpecError
from mm_magics.engine.specs import VersionSpec, check_alias, check_name, parse_spec


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("iris", VersionSpec("iris")),
        ("iris@latest", VersionSpec("iris")),
        ("iris@v3", VersionSpec("iris", number=3)),
        ("iris@v12345", VersionSpec("iris", number=12345)),
        ("iris@production", VersionSpec("iris", alias="production")),
        ("my-model.v2@staging", VersionSpec("my-model.v2", alias="staging")),
        ("  iris@v1 ", VersionSpec("iris", number=1)),
    ],
)
def test_parse_valid(text, expected):
    assert parse_spec(text) == expected


@pytest.mark.parametrize(
    "text", ["", "iris@", "iris@v", "iris@v0", "iris@v1.0", "@v1", "1iris", "ir is", "a@b@c", "x/y"]
)
def test_parse_malformed_names_the_fix(text):
    with pytest.raises(SpecError) as err:
        parse_spec(text)
    message = str(err.value)
    assert "\n" not in message
    assert "e.g." in message or "start at v1" in message


def test_str_round_trips():
    for text in ["iris", "iris@v3", "iris@prod"]:
        assert str(parse_spec(text)) == text


@pytest.mark.parametrize("name", ["a..b", "x.lock", "trailing.", "-dash", "a" * 65, "with space", "ü"])
def test_bad_names(name):
    with pytest.raises(SpecError):
        check_name(name)


@pytest.mark.parametrize("alias", ["v1", "v", "latest", "9lives", "a.b"])
def test_bad_aliases(alias):
    with pytest.raises(SpecError):
        check_alias(alias)
