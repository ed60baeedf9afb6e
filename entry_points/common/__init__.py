"""Helpers of smjobs' bundled training scripts: the model zoo, stage splits and memory tracking (the SageMaker
contract, hyperparameter types, checkpoints and metric lines are in ../smjobs_runtime.py, which users ship too)."""
