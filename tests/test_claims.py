"""The README's design claims, kept true: each is checked on the source, so a change that breaks
one fails here with the file and line.

* artifacts.py owns every path of a run folder: no other module (pipeline/ or apps/) spells an
  artifact's file name or folder; they use its constants and path functions.
* only the compression stage imports tf_keras (tfmot works on tf_keras alone); the README's
  design section names the other places and why.
* no stage does file I/O on the run's data or artifacts: the stages compute, run.py and
  artifacts.py read and write. The one exception, named here, is the log a stage gives a child
  process for its native error output (a crash in the converter or in the microcontroller
  runtime must leave its reason somewhere).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / "pipeline"

# The run folder's file names and folders, as pipeline/artifacts.py defines them.
ARTIFACT_NAME = re.compile(
    r"^(manifest|metrics|training|compression|audit|mitigation|explanations|gate|deployment|flips|layers)\.json$"
    r"|^(predictions|flips)\.csv$|^model_card\.(md|html)$|^(plots|models|analyses|device)/")


def _python_files(*folders: Path) -> list[Path]:
    return sorted(path for folder in folders for path in folder.rglob("*.py") if "__pycache__" not in path.parts)


def test_only_artifacts_py_spells_a_run_folders_file_names():
    found = []
    for path in _python_files(PIPELINE, ROOT / "apps"):
        if path == PIPELINE / "artifacts.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                      and node.body and isinstance(node.body[0], ast.Expr)
                      and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if id(node) in docstrings:
                continue
            pieces = ([(node.lineno, node.values[0].value)] if isinstance(node, ast.JoinedStr) and node.values
                      and isinstance(node.values[0], ast.Constant) and isinstance(node.values[0].value, str) else
                      [(node.lineno, node.value)] if isinstance(node, ast.Constant) and isinstance(node.value, str)
                      else [])
            for line, text in pieces:
                if ARTIFACT_NAME.match(text):
                    found.append(f"{path.relative_to(ROOT)}:{line}: {text!r}")
    assert not found, "use pipeline.artifacts' constants and path functions instead:\n" + "\n".join(found)


def _imports(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


# Where else tf_keras is imported, and why (the README's design section says the same).
TF_KERAS_ELSEWHERE = {
    "pipeline/stages/distributed.py": "tf.distribute.MultiWorkerMirroredStrategy trains tf_keras models, not Keras 3",
}
# The compression stage: the parent (compress.py), the child that builds the variants and its fine-tuning callbacks,
# the twin helpers.
COMPRESSION_STAGE = {"pipeline/stages/compress.py", "pipeline/stages/variant_builder.py",
                     "pipeline/stages/fine_tuning.py", "pipeline/stages/twin.py",
                     "pipeline/stages/batch_norm_folding.py"}


def test_only_the_compression_stage_imports_tf_keras():
    importers = sorted(str(path.relative_to(ROOT)) for path in _python_files(PIPELINE)
                       if {"tf_keras", "tensorflow_model_optimization"} & _imports(ast.parse(path.read_text())))
    assert set(importers) <= COMPRESSION_STAGE | set(TF_KERAS_ELSEWHERE), importers
    assert set(importers) & COMPRESSION_STAGE  # the claim is about a real import
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for module in TF_KERAS_ELSEWHERE:
        assert module in readme, f"README.md's design section must say why {module} imports tf_keras"


# Calls that read or write files, and the stage functions allowed to make them (child-process logs).
FILE_CALLS = {"open", "read_text", "write_text", "read_bytes", "write_bytes", "read_csv", "to_csv", "load", "save",
              "savez", "savefig", "dump", "read_parquet", "to_parquet", "imread", "imsave"}
CHILD_LOGS = {("pipeline/stages/compress.py", "open"), ("pipeline/stages/variant_builder.py", "open"),
              ("pipeline/stages/microcontroller.py", "open")}


def test_no_stage_reads_or_writes_files_but_its_child_processes_logs():
    found = []
    stage_files = _python_files(PIPELINE / "stages") + _python_files(PIPELINE / "explainers")
    for path in stage_files:
        relative = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else (
                node.func.attr if isinstance(node.func, ast.Attribute) else None)
            if name == "load" and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name) \
                    and node.func.value.id not in ("np", "numpy", "json", "pickle"):
                continue  # a domain's or a module's own load(), not a file read
            reader = name is not None and name.startswith("read_")  # the project's own file readers
            if (name in FILE_CALLS or reader) and (relative, name) not in CHILD_LOGS:
                found.append(f"{relative}:{node.lineno}: {name}(...)")
    assert not found, ("stages compute; reading and writing belong to the domain's loader, run.py and "
                       "artifacts.py:\n" + "\n".join(found))
