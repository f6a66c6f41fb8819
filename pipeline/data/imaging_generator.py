"""Embedded default data of the imaging domain: synthetic chest-X-ray-like images.

`generate_chest_images(images, seed)` returns a `GeneratedImages`: uint8 grayscale
images (N, 64, 64), 0/1 labels (1 = pneumonia-like opacities) and one row of patient
metadata per image (sex, age_band, site), all drawn from one seeded numpy Generator
(same arguments -> the same arrays, byte for byte). Nothing is read from disk; 4,800
images take about a second.

The generative story, in the order the draws are made
------------------------------------------------------
1. The patient. `sex` is F or M (50 %); `age_band` is 18-44 (35 %), 45-64 (40 %) or
   65+ (25 %); `site`, the hospital that acquired the image, is A (40 %), B (30 %) or
   C (30 %).
2. The label. P(pneumonia) = site rate (A 0.28, B 0.30, C 0.55) + age shift
   (18-44 -0.08, 45-64 0, 65+ +0.10). Site C sees sicker patients (a referral centre):
   its higher rate is real, not an artefact.
3. The image (64 x 64, values in [0, 1] before the cast to uint8): a dark background; a
   soft-tissue thorax (an ellipse); two dark lung fields with soft edges; the spine and
   mediastinum (a bright vertical band); the heart (a bright ellipse overlapping the lower
   part of the image's right lung field, as in a PA view); faint rib arcs over the lungs;
   low-frequency texture and pixel noise. Every image is shifted, scaled and exposed a
   little differently. Women get a soft breast shadow over the lower lung fields. Images
   of patients 65+ have less air contrast in the lungs and more noise (as in older
   patients and portable films), which makes their opacities harder to see.
4. The disease. A positive image carries 1-3 opacities: Gaussian blobs inside a lung
   field, of random size and strength, some faint, modulated by texture. 15 % of negative
   images carry a faint, small benign blob (a mimic), so the task is not trivial.
5. The hazard: site C's scanner burns a small bright marker (a 5 x 5 square) into the
   top-right corner of every image it produces (MARKER_ROWS x MARKER_COLUMNS, inside
   region "region r0c7" of the 8 x 8 explanation grid). Because site C also has the
   highest disease rate, the marker predicts the label (about 0.55 positive with it,
   0.30 without) while saying nothing about the lungs: a model can learn the shortcut.
   The imaging domain's explanations measure the share of attribution on that region,
   and its shortcut probe stamps / erases the marker to measure what it does to scores.

With the default 4,800 images and seed 0: 35.6 % positive; by site A 26.3 %, B 28.6 %,
C 54.6 % (1,448 images, all with the marker); by age band 18-44 31.0 %, 45-64 34.5 %,
65+ 43.6 %; women 35.6 %, men 35.5 %.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

IMAGE_SIZE = 64
DEFAULT_IMAGES = 4800
LABEL_COLUMN = "pneumonia"
SENSITIVE_COLUMNS = ("sex", "age_band", "site")

SEXES = ("F", "M")
AGE_BANDS = ("18-44", "45-64", "65+")
AGE_SHARES = (0.35, 0.40, 0.25)
AGE_RATE_SHIFT = (-0.08, 0.0, 0.10)
SITES = ("A", "B", "C")
SITE_SHARES = (0.40, 0.30, 0.30)
SITE_RATES = (0.28, 0.30, 0.55)

MARKER_SITE = "C"
MARKER_ROWS = slice(2, 7)        # a 5 x 5 bright square in the top-right corner
MARKER_COLUMNS = slice(57, 62)
MARKER_VALUE = 250               # uint8
MARKER_REGION = "region r0c7"    # its region in the 8 x 8 grid of the explanations

MIMIC_SHARE = 0.15
_CHUNK = 400


@dataclass(frozen=True)
class GeneratedImages:
    images: np.ndarray        # uint8 (N, 64, 64)
    labels: np.ndarray        # int64 (N,), 1 = pneumonia-like opacities
    metadata: pd.DataFrame    # columns sex, age_band, site (str), RangeIndex
    has_marker: np.ndarray    # bool (N,): the burned-in marker of site C


def stamp_marker(images: np.ndarray) -> np.ndarray:
    """A copy of uint8 images (N, 64, 64) with site C's marker burned in."""
    out = np.array(images, dtype=np.uint8, copy=True)
    out[:, MARKER_ROWS, MARKER_COLUMNS] = MARKER_VALUE
    return out


def erase_marker(images: np.ndarray) -> np.ndarray:
    """A copy of uint8 images (N, 64, 64) with the marker's square filled from its surroundings.

    The square gets the median of the 2-pixel ring around it, per image: the dark
    background the corner shows without a marker.
    """
    out = np.array(images, dtype=np.uint8, copy=True)
    top, bottom = MARKER_ROWS.start - 2, MARKER_ROWS.stop + 2
    left, right = MARKER_COLUMNS.start - 2, min(MARKER_COLUMNS.stop + 2, out.shape[2])
    window = out[:, top:bottom, left:right].astype(np.float64)
    ring = np.ones(window.shape[1:], dtype=bool)
    ring[2:2 + (MARKER_ROWS.stop - MARKER_ROWS.start), 2:2 + (MARKER_COLUMNS.stop - MARKER_COLUMNS.start)] = False
    fill = np.median(window[:, ring], axis=1)
    out[:, MARKER_ROWS, MARKER_COLUMNS] = np.round(fill).astype(np.uint8)[:, None, None]
    return out


def _soft_ellipse(x, y, cx, cy, rx, ry, edge):
    """1 inside the ellipse, 0 outside, a logistic edge of width `edge` (broadcasts over images)."""
    distance = np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2)
    return 1.0 / (1.0 + np.exp((distance - 1.0) / edge))


def _smooth_noise(rng: np.random.Generator, n: int, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise (n, size, size), about unit variance: a coarse grid, bilinearly upsampled."""
    coarse = rng.standard_normal((n, cells + 1, cells + 1))
    position = np.linspace(0.0, cells, size)
    low = np.minimum(np.floor(position).astype(int), cells - 1)
    weight = position - low
    rows = coarse[:, low, :] * (1 - weight)[None, :, None] + coarse[:, low + 1, :] * weight[None, :, None]
    return rows[:, :, low] * (1 - weight)[None, None, :] + rows[:, :, low + 1] * weight[None, None, :]


def _draw_images(rng: np.random.Generator, labels: np.ndarray, female: np.ndarray, older: np.ndarray,
                 size: int) -> np.ndarray:
    n = labels.size
    axis = (np.arange(size) + 0.5) / size
    x = axis[None, None, :]
    y = axis[None, :, None]

    def per_image(values):
        return np.asarray(values, dtype=np.float64)[:, None, None]

    shift_x = per_image(rng.normal(0.0, 0.02, n))
    shift_y = per_image(rng.normal(0.0, 0.02, n))
    scale = per_image(rng.uniform(0.92, 1.05, n))
    exposure = per_image(rng.uniform(0.85, 1.15, n))
    cx, cy = 0.5 + shift_x, 0.53 + shift_y

    image = np.full((n, size, size), 0.04)
    thorax = _soft_ellipse(x, y, cx, cy + 0.04, 0.43 * scale, 0.50 * scale, 0.04)
    image += 0.42 * thorax
    lung_contrast = per_image(np.where(older, 0.20, 0.30) * rng.uniform(0.85, 1.15, n))
    lungs = np.zeros_like(image)
    for side in (-1.0, 1.0):
        lungs += _soft_ellipse(x, y, cx + side * 0.19 * scale, cy - 0.02, 0.135 * scale, 0.30 * scale, 0.06)
    lungs = np.clip(lungs, 0.0, 1.0)
    image -= lung_contrast * lungs
    ribs = np.maximum(0.0, np.sin(2 * np.pi * (y * 7.5 - 3.0 * (x - cx) ** 2) + per_image(rng.uniform(0, 6.3, n))))
    image += 0.05 * ribs ** 3 * lungs
    spine = np.exp(-((x - cx) / (0.045 * scale)) ** 2) * (y > 0.12)
    image += 0.28 * spine * thorax
    heart = _soft_ellipse(x, y, cx + 0.08 * scale, cy + 0.13, 0.14 * scale, 0.12 * scale, 0.08)
    image += 0.22 * heart
    breast = _soft_ellipse(x, y, cx, cy + 0.24, 0.40 * scale, 0.14 * scale, 0.15)
    image += 0.07 * breast * per_image(female)

    # opacities (positives) and benign mimics (some negatives), inside a lung field
    texture = 0.65 + 0.35 * np.tanh(_smooth_noise(rng, n, size, 6))
    blobs = np.zeros_like(image)
    counts = np.where(labels == 1, rng.integers(1, 4, n), (rng.random(n) < MIMIC_SHARE).astype(int))
    for k in range(3):
        active = per_image(counts > k)
        side = per_image(rng.choice([-1.0, 1.0], n))
        bx = cx + side * 0.19 * scale + per_image(rng.uniform(-0.07, 0.07, n))
        by = cy + per_image(rng.uniform(-0.20, 0.22, n))
        positive = per_image(labels == 1)
        sigma = np.where(positive, per_image(rng.uniform(0.04, 0.10, n)), per_image(rng.uniform(0.02, 0.035, n)))
        strength = np.where(positive, per_image(rng.uniform(0.06, 0.30, n)), per_image(rng.uniform(0.05, 0.12, n)))
        blobs += active * strength * np.exp(-((x - bx) ** 2 + (y - by) ** 2) / (2 * sigma ** 2))
    image += blobs * texture * (0.4 + 0.6 * lungs)

    image += 0.025 * _smooth_noise(rng, n, size, 10)
    image *= exposure
    noise = per_image(np.where(older, 0.045, 0.03))
    image += noise * rng.standard_normal(image.shape)
    return np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)


def generate_chest_images(images: int = DEFAULT_IMAGES, seed: int = 0, *, size: int = IMAGE_SIZE) -> GeneratedImages:
    """Synthetic chest-X-ray-like images with patient metadata; see the module docstring."""
    if images < 1:
        raise ValueError(f"images is {images}, expected at least 1")
    if size < 64:
        raise ValueError(f"size is {size}, expected at least 64 (the marker sits at columns 57-61)")
    rng = np.random.default_rng(seed)
    sex = rng.choice(SEXES, size=images)
    age = rng.choice(len(AGE_BANDS), size=images, p=AGE_SHARES)
    site = rng.choice(len(SITES), size=images, p=SITE_SHARES)
    rate = np.asarray(SITE_RATES)[site] + np.asarray(AGE_RATE_SHIFT)[age]
    labels = (rng.random(images) < rate).astype(np.int64)
    female = sex == "F"
    older = age == len(AGE_BANDS) - 1
    chunks = [_draw_images(rng, labels[start:start + _CHUNK], female[start:start + _CHUNK],
                           older[start:start + _CHUNK], size)
              for start in range(0, images, _CHUNK)]
    pixels = np.concatenate(chunks)
    has_marker = np.asarray(SITES)[site] == MARKER_SITE
    pixels[has_marker] = stamp_marker(pixels[has_marker])
    metadata = pd.DataFrame({
        "sex": sex.astype(object),
        "age_band": np.asarray(AGE_BANDS, dtype=object)[age],
        "site": np.asarray(SITES, dtype=object)[site],
    })
    return GeneratedImages(images=pixels, labels=labels, metadata=metadata, has_marker=has_marker)
