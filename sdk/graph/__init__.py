"""The model graph: import (Keras, SavedModel, ONNX), inference optimisations, split candidates."""

from splitsdk.graph.keras_import import build_keras, run_layers
from splitsdk.graph.loader import load_graph, load_keras_model, model_sha256
from splitsdk.graph.model import CutTensor, Layer, LayerGraph, SplitCandidate, TensorInfo
from splitsdk.graph.optimize import optimize

__all__ = [
    "CutTensor",
    "Layer",
    "LayerGraph",
    "SplitCandidate",
    "TensorInfo",
    "build_keras",
    "load_graph",
    "load_keras_model",
    "model_sha256",
    "optimize",
    "run_layers",
]
