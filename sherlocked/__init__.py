"""sherlocked: how activation functions interact across the layers of a neural network."""
