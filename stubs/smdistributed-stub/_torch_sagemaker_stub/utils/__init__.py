"""``torch.sagemaker.utils``: timing, module and process-group helpers of AWS's example scripts."""
