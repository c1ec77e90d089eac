"""Tools to measure and tune the pipeline: evaluation against ground truth, `matte
sweep`, hard cases, synthetic and random plates, soft plates and the demo."""
