"""tuning: hyperparameter search over a job, on SageMaker or here.

Lives here: ``trials`` (the job each trial runs, fitting a trial in memory, the space's corners), ``space``
(the space narrowed to what fits, validated and priced: ``prepare``), ``request`` (the
CreateHyperParameterTuningJob request, pure), ``search`` (the same search here with Optuna), ``tracking`` (the
tuning's own MLflow run, parent of the trials' runs, locally and when ``aws`` submits).
The tuning section's limits are a rule like any other: ``checks.tuning``.

May import: ``local``, ``checks``, ``planner``, ``request``, ``spec``, ``catalog``, ``errors``. Submitting is
``aws``'s job.
"""
