"""Synthetic people: a generator of COCO-format images and labels for tests, the demo and the synthetic benchmark
(``render`` draws one image, ``generate`` writes a dataset and converts it)."""
