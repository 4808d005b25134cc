"""CPU smoke test of benchmarks/gpu_step.py, run the way the GPU machine runs it (PYTHONPATH=., no install)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_step.py"
CONFIGS = ("torchvision_resnet50", "comic_three_backbones", "comic_shared_trunk", "authors_recipe", "ddp_one_gpu")
TINY = ["--device", "cpu", "--backbone", "small_cnn", "--image-size", "32", "--batch", "2", "--authors-batch", "2"]
TINY += ["--steps", "2", "--warmup", "1"]


@pytest.mark.timeout(120)
def test_bench_gpu_cpu_smoke(tmp_path):
    out = tmp_path / "results.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *TINY, "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["settings"]["backbone"] == "small_cnn" and report["settings"]["configs"] == list(CONFIGS)
    assert report["torch"] and report["card"] and "3 streams" in report["counting_rule"]
    assert set(report["results"]) == set(CONFIGS)
    for name, result in report["results"].items():
        assert result["status"] == "ok", (name, result.get("traceback"))
        assert result["images_per_s"] > 0 and result["ms_per_step_median"] > 0
        assert len(result["step_ms"]) == 2
    assert report["results"]["torchvision_resnet50"]["ratio_to_reference"] == pytest.approx(1.0)
    assert report["results"]["comic_shared_trunk"]["images_per_step"] == 3 * 2
    assert report["results"]["authors_recipe"]["frozen_backbones"] is True
    assert report["results"]["ddp_one_gpu"]["ddp_backend"] == "gloo"
    assert "| config | status |" in proc.stdout and "ddp_one_gpu" in proc.stdout


@pytest.mark.timeout(120)
def test_bench_gpu_failing_config_does_not_stop_the_others(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_gpu_under_test", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)
    spec.loader.exec_module(bench)

    def out_of_memory(args, device):
        raise RuntimeError("CUDA out of memory. Tried to allocate 9.00 GiB")

    def broken(args, device):
        raise ValueError("something else")

    monkeypatch.setitem(bench.SETUPS, "comic_three_backbones", out_of_memory)
    monkeypatch.setitem(bench.SETUPS, "authors_recipe", broken)
    out = tmp_path / "results.json"
    configs = "torchvision_resnet50,comic_three_backbones,authors_recipe,comic_shared_trunk"
    assert bench.main([*TINY, "--steps", "1", "--configs", configs, "--out", str(out)]) == 0
    results = json.loads(out.read_text())["results"]
    assert list(results) == ["torchvision_resnet50", "comic_three_backbones", "comic_shared_trunk", "authors_recipe"]
    assert results["comic_three_backbones"]["status"] == "oom"
    assert results["authors_recipe"]["status"] == "error" and "something else" in results["authors_recipe"]["error"]
    assert results["comic_shared_trunk"]["status"] == "ok" and results["comic_shared_trunk"]["images_per_s"] > 0
