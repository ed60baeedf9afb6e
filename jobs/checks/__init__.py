"""checks: every rule a spec must meet before anything runs or is sent. ``validate`` is the one entry: it
collects every problem (structure, smjobs' rules, the service model) and raises one ``SpecError``.

Lives here: ``validate`` (the entry and the service-model net), ``cluster`` (name, instances, image, strategy,
degrees), ``job`` (code, script arguments, hyperparameters, storage, security, metrics), ``preferences``
(instance preferences), ``tuning`` (the tuning section against SageMaker's limits), ``service_model``
(botocore's model in full), ``script_args`` (a script's argparse read without running it), ``placement``
(links slower than a strategy assumes).

May import: ``planner``, ``inference``, ``request``, ``schedules``, ``spec``, ``catalog``, ``errors``.
"""
