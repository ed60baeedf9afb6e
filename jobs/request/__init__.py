"""request: spec -> the plain data that is submitted, run locally and printed by ``--dry-run``.

Lives here: ``training`` (the CreateTrainingJob request: ``TrainingRequest``, ``build_request``), ``source``
(what the code archive holds), ``manifests`` (SageMaker manifest files for input channels).

May import: ``spec``, ``catalog``, ``errors`` and ``smjobs_runtime``. Pure: no AWS call, no file written.
"""
