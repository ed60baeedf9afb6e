"""Helpers shared by the training scripts: hyperparameter parsing and the SageMaker environment contract."""
