"""Pose networks with named split points: SimpleBaseline (ResNet-18..152 + deconv head), HRNet-W32/W48 and
EfficientNet-Lite0..4 + deconv head."""

from semipose_tf.models.efficientnet_lite import EfficientNetLitePose
from semipose_tf.models.factory import build_pose_model
from semipose_tf.models.hrnet import HRNet
from semipose_tf.models.simple_baseline import SimpleBaseline
from semipose_tf.models.staged import StagedPoseModel

__all__ = ["EfficientNetLitePose", "HRNet", "SimpleBaseline", "StagedPoseModel", "build_pose_model"]
