"""Evaluation: COCO OKS AP (pycocotools) and MPII PCKh@0.5, as functions, a Keras callback and a script."""
