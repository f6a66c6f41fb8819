"""Moved to `pipeline.explainers.image`; this name keeps the old import path working."""

from pipeline.explainers.image import (
    JSON_IMAGE_SIDE, ImageExplainer, explain_images, image_explanation_figures, local_examples, reference_image,
    region_index_map,
)

__all__ = [
    "JSON_IMAGE_SIDE", "ImageExplainer", "explain_images", "image_explanation_figures", "local_examples",
    "reference_image", "region_index_map",
]
