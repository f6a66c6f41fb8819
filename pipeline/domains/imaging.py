"""The imaging domain: chest-X-ray pneumonia screening that ships as an int8 `.tflite`.

Default data: synthetic chest-X-ray-like images from `pipeline.data.imaging_generator`
(always generated with the fixed seed DATA_SEED; the run's seed drives the split and
training), with patient sex, age band and acquisition site, and a known hazard: site C
burns a marker into a corner and sees more disease, so a model can learn the marker.
A user's data go through `pipeline.data.images.load_images`: a MedMNIST `.npz` (splits
kept) or a folder with one subfolder per class, with an optional `--metadata` CSV.

The model is a small Functional CNN built by the module-level `build_cnn`
(Conv-BatchNorm-ReLU blocks, global average pooling, a sigmoid output), which works with
Keras 3 and tf_keras alike. It holds no random layers: training augmentation (small
translations, zoom and contrast changes) is `augment_images`, which the input pipeline
applies to each batch on the host's CPU threads (pipeline/stages/input_pipeline.py), so
XLA can compile the model on a GPU and the converted twin is the trained model itself.

Explanations: the exact grouped permutation explainer of the tabular domain, with the
regions of an 8 x 8 grid as players (`pipeline.explainers.image`), for the float
model and the int8 `.tflite` alike, plus the share of attribution mass on every region,
corner and border, per group. On the default data, the share on the marker's region is
reported by name, and `extra_analyses` stamps / erases the marker on test images to
measure what it does to every variant's scores and decisions.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.data import imaging_generator as generator
from pipeline.data.images import ImageCollection, assemble, encode_images, load_images
from pipeline.domain import Domain, DomainData
from pipeline.errors import InputError
from pipeline.explainers.image import ImageExplainer, local_examples  # noqa: F401 (local_examples lived here)
from pipeline.options import DomainOption

DATA_SEED = 0
DEFAULT_IMAGES = generator.DEFAULT_IMAGES
# Measured on pneumoniamnist.npz (28 x 28, its own splits; at most 30 epochs, early stopping,
# seed 0, CPU) with the augmentation then inside the model (Keras random layers; now
# `augment_images` in the input pipeline, the same transforms: the imaging-pneumoniamnist
# benchmark has the current figures), float Keras test ROC-AUC: (12, 24, 48, 96) with augmentation 0.962 (55 k
# parameters, int8 file 64,760 bytes); (16, 32, 64, 96) 0.956 (79 k), the same without
# augmentation 0.927; (24, 48, 96, 128) 0.963 (164 k parameters, 2.6x the training time, an
# int8 file near the 200 KB budget). One seed each: differences under ~0.01 are noise.
FILTERS = (12, 24, 48, 96)
DROPOUT_RATE = 0.25
# Few optimisation steps (small data, batch 256: 12 per epoch on the default data) leave
# BatchNorm's moving statistics far from the batch statistics with Keras' default momentum
# 0.99: 0.9 settles in ~20 steps. Measured on the default data (seed 0): momentum 0.9 reached
# test ROC-AUC 0.92; 0.97 and 0.99 were early-stopped at 0.79 and 0.80.
BATCH_NORM_MOMENTUM = 0.9
# Inputs this large start with a stride-2 convolution (the default data: 64 x 64).
STRIDED_STEM_SIDE = 48
MARKER_REGION_NAME = f"marker of site {generator.MARKER_SITE}"


def stem_stride_for(height: int, width: int) -> int:
    """2 for inputs of STRIDED_STEM_SIDE pixels or more (the first convolution halves them), else 1."""
    return 2 if min(height, width) >= STRIDED_STEM_SIDE else 1


def build_cnn(keras: Any, input_shape: Any, *, filters: Sequence[int] = FILTERS, dropout_rate: float = DROPOUT_RATE,
              batch_norm_momentum: float = BATCH_NORM_MOMENTUM, stem_stride: int = 1) -> Any:
    """A Functional CNN: Input -> [Conv2D -> BatchNorm -> ReLU (-> MaxPool)] x len(filters)
    -> GlobalAveragePooling -> Dropout -> Dense(1, sigmoid).

    The first convolution has stride `stem_stride` (2 halves a 64 x 64 input at once: a
    quarter of the compute of every later block).

    `keras` is the Keras module to build with (Keras 3 or tf_keras). Every layer with
    weights has an explicit, unique name, identical in both flavours. Conv2D has no bias and a linear
    activation, so TFLite folds each BatchNorm into its convolution and tfmot's QAT
    recognises the Conv2D + BatchNorm + ReLU pattern.
    """
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 3:
        raise ValueError(f"input_shape {shape}: expected (height, width, channels)")
    if not filters:
        raise ValueError("filters is empty: give at least one convolution block, e.g. (16, 32, 64, 96)")
    inputs = keras.Input(shape=shape, name="image")
    x = inputs
    for index, count in enumerate(filters):
        stride = int(stem_stride) if index == 0 else 1
        x = keras.layers.Conv2D(int(count), 3, strides=stride, padding="same", use_bias=False,
                                name=f"conv_{index}")(x)
        x = keras.layers.BatchNormalization(momentum=float(batch_norm_momentum), name=f"batch_norm_{index}")(x)
        x = keras.layers.ReLU(name=f"relu_{index}")(x)
        if index < len(filters) - 1 and min(x.shape[1], x.shape[2]) >= 2:
            x = keras.layers.MaxPooling2D(2, name=f"pool_{index}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    if dropout_rate:
        x = keras.layers.Dropout(float(dropout_rate), name="dropout")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="probability")(x)
    return keras.Model(inputs=inputs, outputs=outputs, name="xray_cnn")


# Training augmentation, per image: shift up to this fraction of the side, zoom by up to
# this fraction, contrast scaled by up to this fraction (pixel values stay in [0, 1]).
AUGMENT_TRANSLATION = 0.06
AUGMENT_ZOOM = 0.08
AUGMENT_CONTRAST = 0.15


def augment_images(images: Any, seed: Any) -> Any:
    """A random shift (up to AUGMENT_TRANSLATION of the side), zoom (1 +- AUGMENT_ZOOM) and
    contrast change (1 +- AUGMENT_CONTRAST about each image's mean) per image of a batch
    (batch, height, width, channels) in [0, 1]; pixels from outside the image repeat its
    nearest edge, bilinear sampling. Stateless: the int64 seed pair `seed` fixes the output.
    TensorFlow ops, for the tf.data input pipeline."""
    import tensorflow as tf

    images = tf.convert_to_tensor(images, tf.float32)
    height, width = int(images.shape[1]), int(images.shape[2])
    batch = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    shift = tf.random.stateless_uniform([batch, 2], seeds[0], -AUGMENT_TRANSLATION, AUGMENT_TRANSLATION)
    scale = tf.random.stateless_uniform([batch, 1], seeds[1], 1.0 - AUGMENT_ZOOM, 1.0 + AUGMENT_ZOOM)
    factor = tf.random.stateless_uniform([batch, 1, 1, 1], seeds[2], 1.0 - AUGMENT_CONTRAST, 1.0 + AUGMENT_CONTRAST)
    # Repeat the edge pixels far enough out that every sampling box stays inside.
    margin = int(np.ceil(max(height, width) * (AUGMENT_TRANSLATION + AUGMENT_ZOOM / 2))) + 1
    rows = tf.clip_by_value(tf.range(-margin, height + margin), 0, height - 1)
    columns = tf.clip_by_value(tf.range(-margin, width + margin), 0, width - 1)
    padded = tf.gather(tf.gather(images, rows, axis=1), columns, axis=2)
    sides = tf.constant([height - 1, width - 1], tf.float32)
    centre = margin + sides / 2 + shift * tf.constant([height, width], tf.float32)
    half = scale * sides / 2
    padded_sides = tf.constant([height + 2 * margin - 1, width + 2 * margin - 1], tf.float32)
    boxes = tf.concat([(centre - half) / padded_sides, (centre + half) / padded_sides], axis=1)
    moved = tf.image.crop_and_resize(padded, boxes, tf.range(batch), (height, width), method="bilinear")
    mean = tf.reduce_mean(moved, axis=(1, 2), keepdims=True)
    return tf.clip_by_value((moved - mean) * factor + mean, 0.0, 1.0)


def marker_region_by_name(preprocessing: dict) -> dict[str, list[str]] | None:
    """The regions the explanations report by name: on the default data, the region of site C's marker."""
    if not preprocessing.get("default_data"):
        return None
    return {MARKER_REGION_NAME: [preprocessing["default_data"]["marker_region"]]}


class ImagingDomain(Domain):
    name = "imaging"
    title = "Chest X-ray pneumonia screening"
    description = ("Flag pneumonia-like opacities on grayscale chest X-rays with a small CNN shipped as int8; "
                   "audited by sex, age band and acquisition site (one site burns in a marker: a shortcut).")
    modality = "image"
    headline_metric = "roc_auc"
    default_label = generator.LABEL_COLUMN
    default_sensitive = generator.SENSITIVE_COLUMNS
    model_builder = staticmethod(build_cnn)
    options = (
        DomainOption("metadata_path", kind="path", flag="--metadata", metavar="CSV",
                     help="a CSV mapping each image id to its group columns (sex, age, site, ...)"),
        DomainOption("skip_unreadable", kind="flag", default=False,
                     help="skip unreadable image files and count them, instead of stopping"),
        DomainOption("cluster_column", metavar="COLUMN",
                     help="a --metadata column naming the unit each image belongs to (a patient id): a unit's "
                          "images stay in one split, and the audit's intervals resample whole units"),
    )

    # ---- data --------------------------------------------------------------------------
    def load(self, config) -> DomainData:
        if config.data_path is None:
            return self._load_default(config)
        return load_images(config.data_path, seed=config.seed, max_rows=config.max_rows,
                           min_group_size=config.min_group_size, metadata_path=config.option("metadata_path"),
                           label_column=config.label_column, sensitive_columns=tuple(config.sensitive_columns),
                           skip_unreadable=config.option("skip_unreadable"),
                           cluster_column=config.option("cluster_column"), positive_label=config.positive_label)

    def _load_default(self, config) -> DomainData:
        source = "the default imaging data (generated)"
        if (config.option("metadata_path") is not None or config.option("cluster_column") is not None
                or config.label_column not in (None, self.default_label) or config.positive_label is not None):
            raise InputError("--metadata, --cluster-column, --label and --positive-label apply to your own images, "
                             "not to the generated default data",
                             fix="pass --data with your .npz or image folder, or drop --metadata / --cluster-column / "
                                 "--label / --positive-label",
                             source=source)
        columns = tuple(config.sensitive_columns) or self.default_sensitive
        unknown = [c for c in columns if c not in self.default_sensitive]
        if unknown:
            raise InputError(f"sensitive column(s) {', '.join(map(repr, unknown))} not in the default data",
                             fix=f"choose among {', '.join(self.default_sensitive)}", source=source)
        generated = _default_images()
        digest = hashlib.sha256()
        for part in (generated.images, generated.labels):
            digest.update(np.ascontiguousarray(part).tobytes())
        digest.update(generated.metadata.to_csv(index=False, lineterminator="\n").encode())
        marker_rate = float(generated.labels[generated.has_marker].mean())
        other_rate = float(generated.labels[~generated.has_marker].mean())
        collection = ImageCollection(
            images=generated.images, labels=generated.labels,
            ids=[f"generated_{i}" for i in range(len(generated.labels))],
            groups=generated.metadata[list(columns)].reset_index(drop=True), splits=None,
            label_name=generator.LABEL_COLUMN, positive_class="pneumonia", source=source, kind="generated",
            description=(f"synthetic chest-X-ray-like images ({DEFAULT_IMAGES}, {generator.IMAGE_SIZE} x "
                         f"{generator.IMAGE_SIZE}, about {generated.labels.mean():.0%} pneumonia), generated by "
                         f"EdgeAudit with seed {DATA_SEED}"),
            path=None, fingerprint=digest.hexdigest(),
            notes=[f"default data: {DEFAULT_IMAGES} synthetic chest images generated with the fixed seed {DATA_SEED} "
                   f"(the run seed {config.seed} drives the split)",
                   f"known hazard, on purpose: site {generator.MARKER_SITE} burns a bright marker into the top-right "
                   f"corner ({MARKER_REGION_NAME}: {generator.MARKER_REGION}) and sees more disease "
                   f"({marker_rate:.0%} pneumonia with the marker, {other_rate:.0%} without), so a model can learn "
                   f"the marker; the explanations report the attribution share on that region and the shortcut "
                   f"probe stamps / erases it"],
            extra_spec={"default_data": {"marker_site": generator.MARKER_SITE,
                                         "marker_region": generator.MARKER_REGION}})
        return assemble(collection, seed=config.seed, max_rows=config.max_rows, min_group_size=config.min_group_size)

    def encode(self, preprocessing: dict, raw: Any) -> np.ndarray:
        return encode_images(preprocessing, raw)

    # ---- model -------------------------------------------------------------------------
    def model_options(self, data: DomainData, config) -> dict:
        height, width = data.preprocessing["input"]["height"], data.preprocessing["input"]["width"]
        return {"filters": FILTERS, "dropout_rate": DROPOUT_RATE, "batch_norm_momentum": BATCH_NORM_MOMENTUM,
                "stem_stride": stem_stride_for(height, width)}

    def augmentation(self):
        return augment_images

    # ---- explanations ------------------------------------------------------------------
    # SHAP per region of the 8 x 8 grid (pipeline/explainers/image.py); on the default data the
    # share on the marker's region is reported by name.
    explainer = ImageExplainer(named_regions=marker_region_by_name)

    # ---- the shortcut probe (default data) ---------------------------------------------
    def extra_analyses(self, *, predict_functions: dict, thresholds: dict, preprocessing: dict, data: DomainData,
                       config) -> dict:
        if not preprocessing.get("default_data"):
            return {}
        return {"shortcut_probe": shortcut_probe(predict_functions=predict_functions, thresholds=thresholds,
                                                 preprocessing=preprocessing, data=data, encode=self.encode)}

    def extra_figures(self, analyses: dict) -> dict:
        probe = analyses.get("shortcut_probe")
        return {"shortcut_probe": shortcut_probe_figure(probe)} if probe else {}


@functools.lru_cache(maxsize=1)
def _default_images() -> generator.GeneratedImages:
    """The default data, generated once per process (read-only arrays)."""
    generated = generator.generate_chest_images(DEFAULT_IMAGES, seed=DATA_SEED)
    for array in (generated.images, generated.labels, generated.has_marker):
        array.setflags(write=False)
    return generated



def shortcut_probe(*, predict_functions: dict, thresholds: dict, preprocessing: dict, data: DomainData,
                   encode) -> dict:
    """Stamp the marker on test images without it, erase it from those with it; per model.

    Each model is judged at its own decision threshold (`thresholds`, the evaluation's), so
    "flipped" counts decisions a device would change.
    """
    site = preprocessing["default_data"]["marker_site"]
    test_site = data.test.groups["site"].to_numpy() if "site" in data.test.groups.columns else None
    raw = np.asarray(data.test.raw)
    has_marker = (raw[:, generator.MARKER_ROWS, generator.MARKER_COLUMNS] >= generator.MARKER_VALUE).all(axis=(1, 2))
    without, with_marker = raw[~has_marker], raw[has_marker]
    stamped_x = encode(preprocessing, generator.stamp_marker(without))
    erased_x = encode(preprocessing, generator.erase_marker(with_marker))
    without_x, with_x = encode(preprocessing, without), encode(preprocessing, with_marker)
    models, rows = {}, []
    for name, predict in predict_functions.items():
        threshold = float(thresholds[name])
        before_stamp, after_stamp = (np.asarray(predict(x), dtype=np.float64) for x in (without_x, stamped_x))
        before_erase, after_erase = (np.asarray(predict(x), dtype=np.float64) for x in (with_x, erased_x))
        result = {
            "threshold": threshold,
            "stamped_images": int(len(without)),
            "mean_score_change_when_stamped": float((after_stamp - before_stamp).mean()) if len(without) else None,
            "flipped_to_positive_when_stamped": float(((before_stamp < threshold) & (after_stamp >= threshold)).mean())
            if len(without) else None,
            "erased_images": int(len(with_marker)),
            "mean_score_change_when_erased": float((after_erase - before_erase).mean()) if len(with_marker) else None,
            "flipped_to_negative_when_erased": float(((before_erase >= threshold) & (after_erase < threshold)).mean())
            if len(with_marker) else None,
        }
        models[name] = result
        rows.append([name, result["mean_score_change_when_stamped"], result["flipped_to_positive_when_stamped"],
                     result["mean_score_change_when_erased"], result["flipped_to_negative_when_erased"]])
    first = next(iter(models))
    reference = models[first]
    summary = (f"Burning site {site}'s marker into {reference['stamped_images']} test images of other sites changes "
               f"{first}'s score by {reference['mean_score_change_when_stamped']:+.3f} on average and flips "
               f"{reference['flipped_to_positive_when_stamped']:.1%} of its decisions to positive; erasing it from "
               f"{reference['erased_images']} site {site} images changes the score by "
               f"{reference['mean_score_change_when_erased']:+.3f} and flips "
               f"{reference['flipped_to_negative_when_erased']:.1%} to negative. The marker carries no "
               f"information about the lungs: any change is the shortcut at work.")
    return {
        "title": f"Shortcut probe: site {site}'s burned-in marker",
        "summary": summary,
        "marker": {"site": site, "region": generator.MARKER_REGION,
                   "rows": [generator.MARKER_ROWS.start, generator.MARKER_ROWS.stop],
                   "columns": [generator.MARKER_COLUMNS.start, generator.MARKER_COLUMNS.stop],
                   "test_images_with_marker": int(has_marker.sum()),
                   "test_images_of_site": int((test_site == site).sum()) if test_site is not None else None},
        "models": models,
        "table": {"headers": ["model", "mean Δ score, marker stamped", "flipped to positive",
                              "mean Δ score, marker erased", "flipped to negative"], "rows": rows},
    }


def shortcut_probe_figure(probe: dict):
    from matplotlib.figure import Figure

    names = list(probe["models"])
    stamped = [probe["models"][n]["mean_score_change_when_stamped"] or 0.0 for n in names]
    erased = [probe["models"][n]["mean_score_change_when_erased"] or 0.0 for n in names]
    figure = Figure(figsize=(7.5, 1.2 + 0.4 * len(names)))
    axes = figure.add_subplot()
    y = np.arange(len(names))
    axes.barh(y - 0.2, stamped, height=0.4, color="#d62728", label="marker stamped (other sites)")
    axes.barh(y + 0.2, erased, height=0.4, color="#1f77b4", label=f"marker erased (site {probe['marker']['site']})")
    axes.set_yticks(y)
    axes.set_yticklabels(names, fontsize=8)
    axes.invert_yaxis()
    axes.axvline(0.0, color="black", linewidth=0.8)
    axes.set_xlabel("mean change of the score (probability)")
    axes.set_title(probe["title"], fontsize=10)
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure
