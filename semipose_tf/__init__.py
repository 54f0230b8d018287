"""semipose_tf: semi-supervised 2D human pose estimation in Keras 3 / TensorFlow."""

__version__ = "0.1.0"
