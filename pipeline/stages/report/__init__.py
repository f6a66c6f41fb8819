"""Report: the model card (Markdown and HTML) and the edge trade-off plots.

The card follows the sections of "Model Cards for Model Reporting" (Mitchell et al.,
2019): model details, intended use, factors, metrics, evaluation data, training data,
quantitative analyses, ethical considerations, caveats and recommendations; plus what
this tool adds: the edge variants, what compression did to each group, and the gate.
Every number in it is read from the run's measured results. The card is built as a list
of blocks and rendered twice, so the Markdown and the HTML always say the same thing.

Where each part lives (one module per idea):

* ``card.py``: the blocks (Heading, Paragraph, Bullets, Table, Contents, Code, Image) and
  their rendering to Markdown and HTML;
* ``formatting.py``: how numbers, intervals, sizes and changes are written;
* ``sections.py``: the descriptive sections (details, intended use, factors, metrics, data,
  gate, ethical considerations, caveats);
* ``analyses.py``: the quantitative analyses (variants, groups, compression, mitigation);
* ``explanations.py``: the SHAP part, and the method's wording the dashboard shares;
* ``deployment.py``: the deployment section;
* ``build.py``: ``model_card``, the sections in order;
* ``figures.py``: ``evaluation_figures`` and ``pareto_front``.
"""

from __future__ import annotations

# Re-exported: every name other modules and the tests import from pipeline.stages.report.
from pipeline.stages.report.build import model_card
from pipeline.stages.report.card import (
    Bullets,
    Code,
    Contents,
    Heading,
    Image,
    ModelCard,
    Paragraph,
    Table,
    anchor,
    render_html,
    render_markdown,
)
from pipeline.stages.report.explanations import _explanations, explanation_method_text
from pipeline.stages.report.figures import evaluation_figures, pareto_front

