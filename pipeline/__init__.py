"""EdgeAudit: train, compress for the edge, explain and audit Keras models, one run folder each.

In Python (a notebook): `from pipeline import run_domain` (pipeline/api.py).
"""

__version__ = "0.1.0"

__all__ = ["RunResult", "run_domain", "__version__"]


def __getattr__(name: str):
    # Imported on first use: the dashboard and the CLI import `pipeline` and stay light.
    if name in ("run_domain", "RunResult"):
        from pipeline import api

        return getattr(api, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
