import os

import matplotlib

matplotlib.use("Agg")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_collection_modifyitems(config, items):
    """`make test` runs the suite on two workers (pytest-xdist, --dist loadgroup): a module's tests stay on
    one worker, so its module-scoped fixtures (a finished run, a dashboard in a browser) are made once; the
    domain contract suite is split by domain, one finished run per domain, so that its five runs share out."""
    import pytest

    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        group = item.module.__name__
        params = getattr(getattr(item, "callspec", None), "params", {})
        if group.endswith("test_domain_contract") and ("finished_run" in params or "name" in params):
            group += "-" + str(params.get("finished_run", params.get("name")))
        item.add_marker(pytest.mark.xdist_group(group))
