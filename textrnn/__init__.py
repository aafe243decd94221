"""textrnn: recurrent neural networks for text, written from their equations."""

__version__ = "0.1.0"
