"""The experiment layer: configs, run directories, train / evaluate / predict (work in progress)."""
