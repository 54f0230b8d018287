"""Pose networks with named split points: SimpleBaseline (ResNet-18..152 + deconv head) and HRNet-W32/W48."""

from semipose_tf.models.factory import build_pose_model
from semipose_tf.models.hrnet import HRNet
from semipose_tf.models.simple_baseline import SimpleBaseline
from semipose_tf.models.staged import StagedPoseModel

__all__ = ["HRNet", "SimpleBaseline", "StagedPoseModel", "build_pose_model"]
