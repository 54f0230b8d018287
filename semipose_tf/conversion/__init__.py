"""Conversion of datasets to TFRecord sets: readers of each source layout (``sources``: COCO, MPII, AI Challenger,
detections; ``lsp``: LSP / LSPET) and the writer of the labeled / unlabeled / eval sets (``convert``)."""
