import pytest

from paraphe_common.committees import ASSEMBLEE_NATIONALE, InvalidCommittees, parse_committees


def test_the_assemblee_nationale_eight_by_default() -> None:
    assert parse_committees(None) == ASSEMBLEE_NATIONALE
    assert parse_committees("  ") == ASSEMBLEE_NATIONALE
    assert len(ASSEMBLEE_NATIONALE) == 8
    assert len({c.id for c in ASSEMBLEE_NATIONALE}) == 8


def test_a_configured_list() -> None:
    committees = parse_committees('[{"id": "petitions", "name": "Commission des pétitions"}]')
    assert [(c.id, c.name) for c in committees] == [("petitions", "Commission des pétitions")]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("{", "not JSON"),
        ("[]", "non-empty"),
        ('[{"id": "x"}]', "exactly id and name"),
        ('[{"id": "Bad Id", "name": "n"}]', "invalid committee id"),
        ('[{"id": "ok", "name": " "}]', "has no name"),
        ('[{"id": "ok", "name": "a"}, {"id": "ok", "name": "b"}]', "unique"),
    ],
)
def test_invalid_lists_are_refused_with_a_reason(document: str, message: str) -> None:
    with pytest.raises(InvalidCommittees, match=message):
        parse_committees(document)
