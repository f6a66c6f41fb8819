"""Assertions that more than one test module makes about a run's records."""


def assert_learning_rate_search(details: dict, rates: list[str]) -> None:
    search = details["learning_rate_search"]
    assert list(search["candidates"]) == rates
    assert search["chosen"] == details["fine_tuning"]["learning_rate"]
    chosen, leader = f"{search['chosen']:g}", search["leader_on_pr_auc"]
    assert search["candidates"][leader]["validation_pr_auc"] == max(
        candidate["validation_pr_auc"] for candidate in search["candidates"].values())
    assert chosen in search["tied"] and search["tied"][0] == leader
    for rate in rates:
        if rate != leader:
            assert search["candidates"][rate]["tied_with_leader"] == (rate in search["tied"])
    if chosen != leader:  # a tie, broken toward the float model
        assert search["candidates"][chosen]["rank_correlation_with_float"] \
            >= search["candidates"][leader]["rank_correlation_with_float"]
    assert search["chosen_because"]
