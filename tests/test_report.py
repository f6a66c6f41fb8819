"""Report helpers: the Pareto front and the two renderings of the model card."""

from pipeline.stages.report import Bullets, Heading, Image, Paragraph, Table, pareto_front, render_html, render_markdown


def test_pareto_front_keeps_only_undominated_points():
    points = [(10.0, 0.90), (5.0, 0.89), (5.0, 0.80), (20.0, 0.95), (25.0, 0.94)]
    assert pareto_front(points) == [1, 0, 3]


def test_markdown_and_html_render_the_same_blocks():
    blocks = [Heading(1, "Card"), Paragraph("**Gate PASSED** for `int8` <x>"), Bullets(["a", "b"]),
              Table(["k", "v"], [["x|y", "1"]]), Image("plots/tradeoff.png", "trade-off")]
    markdown = render_markdown(blocks)
    assert "# Card" in markdown and "| x\\|y | 1 |" in markdown and "![trade-off](plots/tradeoff.png)" in markdown
    page = render_html(blocks, "Card")
    assert "<strong>Gate PASSED</strong>" in page and "<code>int8</code>" in page
    assert "&lt;x&gt;" in page and "<x>" not in page
    assert '<img src="plots/tradeoff.png"' in page and "<td>x|y</td>" in page
