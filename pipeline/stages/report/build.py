"""`model_card`: the card's sections put together in order, with a table of contents, rendered twice.

The sections are built in sections.py (descriptive), analyses.py (quantitative) and deployment.py;
this module only decides their order and renders the blocks to Markdown and to HTML.
"""

from __future__ import annotations

from pipeline.stages.report.analyses import _quantitative_analyses
from pipeline.stages.report.card import Contents, Heading, ModelCard, render_html, render_markdown
from pipeline.stages.report.deployment import _deployment
from pipeline.stages.report.sections import (
    _caveats,
    _data,
    _ethical_considerations,
    _factors,
    _gate,
    _intended_use,
    _metrics,
    _model_details,
    _verdict,
)


def model_card(*, manifest: dict, metrics: dict, compression: dict, audit: dict, mitigation: dict,
               explanation: dict, gate: dict, training: dict, plots: list[str],
               analyses: dict | None = None, deployment: dict | None = None,
               flips: dict | None = None, layers: dict | None = None) -> ModelCard:
    """The model card of a run, from its measured results (the JSON the run folder holds).

    `plots` are the run folder's figure paths the card may show; `analyses` the domain's own
    analyses; `deployment` (deployment.json) adds the Deployment section; `flips` (flips.json) the
    flip ledger's summary; `layers` (layers.json's "variants") the per-layer quantization error. Returns the same
    blocks rendered as Markdown and as HTML.
    """
    data = manifest["data"]
    title = f"Model card: {manifest['domain_title']} ({manifest['run_id']})"
    blocks: list = [Heading(1, title), _verdict(manifest, gate)]
    blocks += _model_details(manifest, training)
    blocks += _intended_use()
    blocks += _factors(data, audit, manifest.get("modality"))
    blocks += _metrics(manifest["headline_metric"], audit)
    blocks += _data(data)
    blocks += _quantitative_analyses(manifest=manifest, metrics=metrics, compression=compression, audit=audit,
                                     mitigation=mitigation, explanation=explanation, plots=plots, analyses=analyses,
                                     flips=flips, layers=layers, deployment=deployment)
    blocks += _gate(gate)
    if deployment:
        blocks += _deployment(deployment, manifest)
    blocks += _ethical_considerations()
    blocks += _caveats(compression, data)
    sections = [block.text for block in blocks if isinstance(block, Heading) and block.level == 2]
    blocks.insert(2, Contents(sections))  # after the title and the verdict
    return ModelCard(markdown=render_markdown(blocks), html=render_html(blocks, title))
