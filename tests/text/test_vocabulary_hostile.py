"""Round 3 of hostile inputs (issue 24), a saved word vocabulary from elsewhere (a run's or an
export's tokenizer): JSON that is not a list of words starting <pad>, <unk> is a DataError naming
the file (a list at the top was an AttributeError). Links out of an export's tokenizer folder:
tests/test_export_hostile_round3.py."""

import json

import pytest

from multivic.errors import DataError
from multivic.text.vocabulary import WordVocabulary


@pytest.mark.parametrize(
    "data,message",
    [
        ({"kind": "word", "words": ["<pad>", "<unk>", ["a"]]}, "not a multivic word vocabulary"),
        ({"kind": "word", "words": ["a", "b"]}, "starting '<pad>', '<unk>'"),
        ([1, 2], "is not a multivic word vocabulary"),
        ("[" * 100_000 + "]" * 100_000, "cannot read vocabulary"),
    ],
)
def test_a_vocabulary_that_is_not_words_is_refused(tmp_path, data, message):
    path = tmp_path / "vocabulary.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    with pytest.raises(DataError, match=message):
        WordVocabulary.load(path)
