"""Static INT8 of YOLO: which head nodes stay in float, and what the export produced."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vision_train.export.quantize import yolo_head_nodes_to_exclude


@pytest.mark.slow
def test_static_int8_quantizes_the_dfl_and_keeps_the_score_tail_in_float(
    trained_yolo: Any,
) -> None:
    import onnx

    fp32: Path = trained_yolo.onnx
    graph = onnx.load(str(fp32)).graph
    by_name = {n.name: n for n in graph.node}
    excluded = set(yolo_head_nodes_to_exclude(fp32))
    whole_tail = set(yolo_head_nodes_to_exclude(fp32, quantize_dfl=False))
    assert excluded < whole_tail
    # quantized now: the DFL and the box logits that feed it, nothing of the class path
    dfl = whole_tail - excluded
    assert {by_name[n].op_type for n in dfl} == {
        "Reshape",
        "Concat",
        "Transpose",
        "Softmax",
        "Conv",
    }
    assert all("/dfl/" in n or by_name[n].op_type in ("Reshape", "Concat") for n in dfl)
    # still float: the class scores' sigmoid and the final concat of boxes with scores
    (output_node,) = [n for n in graph.node if graph.output[0].name in n.output]
    assert output_node.name in excluded
    assert any(by_name[n].op_type == "Sigmoid" for n in excluded)

    # the pipeline's INT8 model follows that split
    q = onnx.load(str(trained_yolo.onnx_int8)).graph
    producer = {out: n for n in q.node for out in n.output}
    (softmax,) = [n for n in q.node if n.op_type == "Softmax" and "/dfl/" in n.name]
    assert producer[softmax.input[0]].op_type == "DequantizeLinear"
    (sigmoid,) = [n for n in q.node if n.op_type == "Sigmoid" and n.name in excluded]
    assert producer[sigmoid.input[0]].op_type != "DequantizeLinear"
    assert producer[q.output[0].name].op_type == "Concat"

    m = json.loads((trained_yolo.run_dir / "metrics.json").read_text())["metrics"]
    assert m["int8"]["mode"] == "static"
    assert m["int8"]["map50"] > 0.0, "static INT8 lost every detection"
    assert m["int8"]["map50"] >= m["fp32"]["map50"] - 0.05, (m["fp32"], m["int8"])
