"""sac: Soft Actor-Critic for continuous control with PyTorch, Gymnasium and Hydra."""

__version__ = "0.1.0"
