"""EdgeAudit: train, compress for the edge, explain and audit Keras models, one run folder each."""

__version__ = "0.1.0"
