"""Models: TSM ResNet and weight initialisation / transfer."""
