"""The networks the methods build on: ImageNet backbones (backbones), where their weights come from
and how they are checked and cached (weights), and PyTorch checkpoints read without PyTorch
(torch_state). Nothing here knows about anomaly detection."""
