"""The order in which a dbt build runs ready nodes: the longest chain of models first."""

import networkx as nx
import pytest
from dbt.graph.queue import GraphQueue

from orchestration.dbt_priority import chain_lengths, critical_path_scores, longest_chain_first


def _graph(edges: list[tuple[str, str]], nodes: list[str] = ()) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from(edges)
    return graph


# a chain of five models (a..e) and a shallow pair (f -> g); a test on b blocks c, as in
# `dbt build`
CHAIN = ["model.p.a", "model.p.b", "test.p.not_null_b", "model.p.c", "model.p.d",
         "model.p.e"]
EDGES = [*zip(CHAIN, CHAIN[1:], strict=False), ("model.p.b", "model.p.c"),
         ("model.p.f", "model.p.g")]


def _one_thread_order(graph: nx.DiGraph) -> list[str]:
    """The order dbt's own queue hands nodes to a single thread."""
    queue = GraphQueue(graph.copy(), manifest=None, selected=set(graph.nodes))
    order = []
    while not queue.inner.empty():
        _, node = queue.inner.get()
        queue.in_progress.add(node)
        queue.queued.discard(node)
        order.append(node.split(".")[-1])
        queue.mark_done(node)
    return order


def test_chain_lengths_count_models_one_and_tests_a_tenth():
    lengths = chain_lengths(_graph(EDGES))
    assert lengths["model.p.e"] == 1
    assert lengths["model.p.c"] == 3
    assert lengths["test.p.not_null_b"] == pytest.approx(3.1)
    assert lengths["model.p.a"] == pytest.approx(5.1)
    assert lengths["model.p.f"] == 2


def test_sources_and_other_nodes_add_nothing_to_a_chain():
    lengths = chain_lengths(_graph([("source.p.raw.events", "model.p.x"),
                                    ("model.p.x", "exposure.p.dashboard")]))
    assert lengths == {"source.p.raw.events": 1, "model.p.x": 1, "exposure.p.dashboard": 0}


def test_ties_keep_dbts_levels():
    graph = _graph([("model.p.a", "model.p.b")], nodes=["model.p.c"])
    scores = critical_path_scores(graph, {"model.p.a": 0, "model.p.b": 1, "model.p.c": 0})
    assert scores["model.p.a"] == (-2, 0)
    assert scores["model.p.b"] == scores["model.p.c"][:1] + (1,)
    assert scores["model.p.c"] < scores["model.p.b"]


def test_dbts_queue_runs_the_long_chain_first_while_the_priority_is_on():
    graph = _graph(EDGES)
    # dbt's own order: the lowest level first, so the shallow pair gets in between
    assert _one_thread_order(graph) == ["a", "f", "b", "g", "not_null_b", "c", "d", "e"]
    with longest_chain_first():
        # after c, the chains left (d, e) and (f, g) are as long: dbt's level decides
        assert _one_thread_order(graph) == ["a", "b", "not_null_b", "c", "f", "d", "g", "e"]
    # and dbt's again afterwards
    assert _one_thread_order(graph) == ["a", "f", "b", "g", "not_null_b", "c", "d", "e"]


def test_dbts_own_scores_come_back_after_an_error():
    before = GraphQueue._get_scores
    with pytest.raises(RuntimeError), longest_chain_first():
        assert GraphQueue._get_scores is not before
        raise RuntimeError("the build failed")
    assert GraphQueue._get_scores is before
