"""The tabular domain: any binary-labelled table, by its own name.

`edgeaudit run tabular --data FILE --label COLUMN --sensitive COLUMN ...` audits an income,
credit or recidivism table the same way the fraud domain audits transactions: the generic CSV
loader (`pipeline.data.tabular.load_tabular`: types, identifiers, imputation, banding,
stratified splits) and the same MLP. It has no default data: `fraud` is the preset that
generates its own (card transactions) and reads a user's CSV through this domain.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.data.tabular import encode_tabular, load_tabular
from pipeline.domain import Domain, DomainData
from pipeline.errors import InputError
from pipeline.options import DomainOption
from pipeline.search_step import ENSEMBLE_MEMBERS_OPTION, SEARCH_TRIALS_OPTION

# Wide enough that int8's fixed overhead (quantization parameters, flatbuffer tables)
# stays small next to the weights, and that 75 % magnitude pruning leaves capacity to
# recover: measured on the default data, (64, 32) gave int8 at 0.49x the float32 file and
# lost 0.067 PR-AUC when pruned; (256, 128) gives 0.27x and keeps every int8 variant
# within 0.01 PR-AUC of float (`python -m benchmarks.run`).
HIDDEN_UNITS = (256, 128)
DROPOUT_RATE = 0.2


def build_mlp(keras: Any, input_shape: Any, *, hidden_units: Sequence[int] = HIDDEN_UNITS,
              dropout_rate: float = DROPOUT_RATE, l2: float = 0.0, members: int = 1) -> Any:
    """A Functional MLP: Input -> [Dense(relu) -> Dropout] x len(hidden_units) -> Dense(1, sigmoid).

    `keras` is the Keras module to build with (Keras 3 or tf_keras); only `keras.Input`,
    `keras.layers.Dense`, `keras.layers.Dropout`, `keras.layers.Average`, `keras.regularizers.L2`
    and `keras.Model` are used. l2: weight decay on the hidden layers' kernels (0: none). The
    output layer is float32 even under a mixed-precision policy.

    members > 1: a deep ensemble, `members` such MLPs side by side on the same input, their
    probabilities averaged by a layer named "probability" (ADD and MUL in the .tflite, which the
    microcontroller runtime runs). Member m's layers are named `member_layer_name(m, ...)`; the
    members are trained one by one as single MLPs (pipeline/stages/ensemble.py) and their
    weights copied in by those names.
    """
    shape = (int(input_shape),) if isinstance(input_shape, (int, np.integer)) else tuple(int(d) for d in input_shape)
    inputs = keras.Input(shape=shape, name="features")

    def mlp(prefix: str):
        x = inputs
        for i, units in enumerate(hidden_units):
            regularizer = keras.regularizers.L2(float(l2)) if l2 else None
            x = keras.layers.Dense(int(units), activation="relu", kernel_regularizer=regularizer,
                                   name=f"{prefix}dense_{i}")(x)
            if dropout_rate:
                x = keras.layers.Dropout(float(dropout_rate), name=f"{prefix}dropout_{i}")(x)
        return keras.layers.Dense(1, activation="sigmoid", dtype="float32", name=f"{prefix}probability")(x)

    if int(members) == 1:
        return keras.Model(inputs=inputs, outputs=mlp(""), name="fraud_mlp")
    outputs = [mlp(member_layer_name(m, "")) for m in range(int(members))]
    averaged = keras.layers.Average(dtype="float32", name="probability")(outputs)
    return keras.Model(inputs=inputs, outputs=averaged, name="fraud_mlp_ensemble")


def member_layer_name(member: int, name: str) -> str:
    """The name in a deep ensemble (`build_mlp(members=k)`) of layer `name` of member `member` (0-based)."""
    return f"member_{member}_{name}"


CLUSTER_OPTION = DomainOption(
    "cluster_column", metavar="COLUMN",
    help="the unit each row belongs to (a customer or patient id): a unit's rows stay in one split, and the "
         "audit's intervals resample whole units")


class TabularDomain(Domain):
    name = "tabular"
    title = "Tabular classification (your table)"
    description = ("Any binary-labelled table (CSV): --data, --label and --sensitive name the file, the outcome "
                   "and the groups to audit; --positive-label names the outcome's value when the label holds more "
                   "than two. No default data (`fraud` is the preset that has some).")
    modality = "tabular"
    headline_metric = "pr_auc"
    has_default_data = False
    reads_tables = True
    model_builder = staticmethod(build_mlp)
    options = (CLUSTER_OPTION, SEARCH_TRIALS_OPTION, ENSEMBLE_MEMBERS_OPTION)

    def load(self, config) -> DomainData:
        if config.data_path is None:
            raise InputError("the tabular domain has no default data",
                             fix="pass your table: edgeaudit run tabular --data FILE.csv --label COLUMN --sensitive "
                                 "COLUMN ...; or try `edgeaudit run fraud`, which generates its own",
                             source="edgeaudit run tabular")
        return self.load_table(config, config.data_path)

    def load_table(self, config, data, **how) -> DomainData:
        """`data` (the user's CSV path, or a generated frame) through the generic loader with every data
        option of the run; `how` overrides the loader's arguments (a preset's label, groups and names)."""
        arguments = dict(
            label_column=config.label_column,
            sensitive_columns=tuple(config.sensitive_columns),
            seed=config.seed,
            min_group_size=config.min_group_size,
            max_rows=config.max_rows,
            cluster_column=config.option("cluster_column"),
            positive_label=config.positive_label,
            drop_columns=config.drop_columns,
            merge_small_groups=config.merge_small_groups,
            kind="file",
        )
        return load_tabular(data, **{**arguments, **how})

    def encode(self, preprocessing: dict, raw: Any) -> np.ndarray:
        return encode_tabular(preprocessing, raw)

    def model_options(self, data: DomainData, config) -> dict:
        """The fixed recipe's MLP; the model search (`--search-trials`) may choose another on validation."""
        return {"hidden_units": HIDDEN_UNITS, "dropout_rate": DROPOUT_RATE}

    def searches_model(self, data: DomainData) -> bool:
        return True

    def sample_data(self, folder) -> dict:
        """A small table of this domain's kind and the options that read it (the contract suite runs
        the domain on it): 3,000 generated transactions saved as CSV."""
        from pathlib import Path

        from pipeline.data.fraud_generator import LABEL_COLUMN, SENSITIVE_COLUMNS, generate_transactions

        path = Path(folder) / "sample_table.csv"
        generate_transactions(rows=3000, seed=1).to_csv(path, index=False)
        return {"data_path": str(path), "label_column": LABEL_COLUMN, "sensitive_columns": tuple(SENSITIVE_COLUMNS)}
