"""Training scripts uploaded as the job's source_dir. They import only torch and the standard library."""
