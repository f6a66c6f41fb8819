"""Several machines: two workers on 127.0.0.1 train one model together; only the chief reports."""

import json
import os
import socket
import subprocess
import sys

import pytest

from pipeline.errors import InputError
from pipeline.stages.distributed import Cluster, resolve_cluster


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_cluster_from_arguments_and_from_tf_config():
    assert resolve_cluster((), None, environment={}) is None
    cluster = resolve_cluster(("a:1", "b:2"), 1, environment={})
    assert cluster == Cluster(("a:1", "b:2"), 1) and not cluster.is_chief
    tf_config = json.dumps({"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}})
    assert resolve_cluster((), None, environment={"TF_CONFIG": tf_config}).is_chief


@pytest.mark.parametrize("workers, index, expected", [
    (("a:1", "b"), 0, "worker address 'b' is not HOST:PORT"),
    (("a:1", "b:2"), 2, "--worker-index 2 does not name one of the 2 workers"),
])
def test_bad_cluster_options_name_the_value(workers, index, expected):
    with pytest.raises(InputError, match=expected):
        resolve_cluster(workers, index, environment={})


def test_bad_tf_config_is_an_input_error():
    with pytest.raises(InputError, match="TF_CONFIG is not valid"):
        resolve_cluster((), None, environment={"TF_CONFIG": "{not json"})


def _command(out, *extra):
    return [sys.executable, "-m", "pipeline", "run", "fraud", "--quick", "--max-rows", "2500", "--min-group-size",
            "10", "--bootstrap-samples", "20", "--variants", "float32", "int8", "--out", str(out), *extra]


def test_two_workers_train_one_model_and_match_a_single_worker(tmp_path):
    workers = ",".join(f"127.0.0.1:{port}" for port in _free_ports(2))
    environment = {**os.environ, "PYTHONUNBUFFERED": "1"}
    environment.pop("TF_CONFIG", None)
    processes = [subprocess.Popen(_command(tmp_path / "cluster", "--workers", workers, "--worker-index", str(i)),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment)
                 for i in (1, 0)]
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=600)[0])
    finally:
        for process in processes:
            process.kill()
    worker_output, chief_output = outputs
    assert processes[0].returncode == 0, worker_output[-3000:]
    assert processes[1].returncode in (0, 3), chief_output[-3000:]
    manifests = list((tmp_path / "cluster").rglob("manifest.json"))
    assert len(manifests) == 1  # only the chief writes a report
    manifest = json.loads(manifests[0].read_text())
    distributed = manifest["distributed"]
    assert distributed["replicas_in_sync"] == 2 and len(distributed["workers"]) == 2
    assert f"weights fingerprint {distributed['weights_fingerprint']}" in worker_output  # one model, two workers

    single = subprocess.run(_command(tmp_path / "single"), capture_output=True, text=True, env=environment,
                            timeout=600)
    assert single.returncode in (0, 3), single.stdout[-3000:] + single.stderr[-3000:]
    single_manifest = json.loads(next((tmp_path / "single").rglob("manifest.json")).read_text())
    cluster_auc = json.loads((manifests[0].parent / "metrics.json").read_text())["keras_float"]["quality"]["roc_auc"]
    single_auc = json.loads((next((tmp_path / "single").rglob("metrics.json"))).read_text())["keras_float"]["quality"]["roc_auc"]
    assert single_manifest["distributed"] is None
    assert abs(cluster_auc - single_auc) < 0.05, (cluster_auc, single_auc)
