"""Training: the LightningModule, `fit`, and the tracked run shared by `train` and sweeps."""
