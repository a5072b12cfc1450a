"""Passage -> document aggregation (MaxP, FirstP, sum) of runs scored against document qrels."""

import pytest

from lucerag.errors import LuceragError
from lucerag.errors import UnknownRunIdError
from lucerag.eval.aggregate import aggregate_run, split_passage_id, unknown_ids

RUN = {"q1": {"d1#0": 1.0, "d1#2": 3.0, "d2": 2.5, "d3#1": 4.0, "a#b#1": 0.5, "ghost#0": 9.0}}
CORPUS = {"d1", "d2", "d3", "a#b"}


def test_maxp_takes_the_best_passage_and_drops_unknown_ids():
    unknown = []
    docs = aggregate_run(RUN, "maxp", CORPUS, unknown)["q1"]
    assert docs == {"d1": 3.0, "d2": 2.5, "d3": 4.0, "a#b": 0.5}
    assert unknown == [("q1", "ghost#0")]


def test_firstp_keeps_only_documents_whose_first_passage_was_retrieved():
    docs = aggregate_run(RUN, "firstp", CORPUS)["q1"]
    assert docs == {"d1": 1.0, "d2": 2.5}


def test_sum_adds_the_passages_of_a_document():
    docs = aggregate_run(RUN, "sum", CORPUS)["q1"]
    assert docs == {"d1": 4.0, "d2": 2.5, "d3": 4.0, "a#b": 0.5}


def test_a_document_run_is_unchanged_by_every_aggregation():
    run = {"q": {"d1": 1.0, "d2": 0.5}}
    for how in ("maxp", "firstp", "sum"):
        assert aggregate_run(run, how, {"d1", "d2"}) == run


def test_ids_containing_a_hash_resolve_against_the_corpus():
    assert split_passage_id("a#b", CORPUS) == ("a#b", 0)
    assert split_passage_id("a#b#3", CORPUS) == ("a#b", 3)
    assert split_passage_id("a#b", None) == ("a#b", 0)      # no corpus: not a chunk number
    assert split_passage_id("x#7", None) == ("x", 7)
    assert split_passage_id("x#7", CORPUS) is None


def test_unknown_ids_and_bad_aggregation():
    assert unknown_ids(RUN, CORPUS) == [("q1", "ghost#0")]
    assert issubclass(UnknownRunIdError, LuceragError)
    with pytest.raises(ValueError, match="maxp"):
        aggregate_run(RUN, "max")
