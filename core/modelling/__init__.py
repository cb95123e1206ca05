"""Models: architectures, model cards and checkpoints, torchvision's ImageNet weights, training, evaluation,
predictions, out-of-distribution checks and the trust warnings built on them."""
