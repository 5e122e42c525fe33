"""The Optuna layer over `mnist_fc`: search spaces, objective, storage, CLI and analysis."""
