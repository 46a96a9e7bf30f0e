import pytest
from stfpm_helpers import load_script


@pytest.mark.slow
def test_bench_quick_rows():
    """bench.run(quick=True) measures everything it promises (no assertion on the times themselves)."""
    rows = load_script("bench").run(quick=True)
    names = {(r["name"], r.get("mode"), r.get("batch_size")) for r in rows}
    for mode in ("dygraph", "predictor_onednn_on", "predictor_onednn_off"):
        for bs in (1, 8):
            for name in ("infer_images_per_s", "postprocess_share", "model_ms_per_image"):
                assert (name, mode, bs) in names
    wanted = {"train_images_per_s", "train_gflop_per_image", "gflops_teacher_student_to_layer3"}
    assert wanted <= {r["name"] for r in rows}
    modes = {r["mode"] for r in rows if r["name"] == "train_images_per_s"}
    assert {"eager, teacher every step (before)", "eager, teacher cached"} <= modes
    gflops = next(r for r in rows if r["name"] == "gflops_teacher_student_to_layer3")
    # ResNet-18 conv1..layer3 at 256 x 256: 1.832 GMACs per network, teacher + student, 2 FLOPs per MAC
    assert gflops["value"] == pytest.approx(7.327, rel=1e-3) and gflops["image_size"] == 256
    assert all(r["value"] >= 0 for r in rows)
