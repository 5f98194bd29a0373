"""vqcodec: a learned image codec."""
