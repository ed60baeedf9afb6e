"""local: run a request on this machine under the SageMaker container contract, without Docker.

Lives here: ``runner`` (the /opt/ml tree, config files, SM_* variables, the container toolkit's entry),
``prechecks`` (what is checked before any process starts), ``env`` (an isolated venv for code with its own
requirements), ``stop`` (stopping every process at any moment), ``failures`` (which rank failed first, and how).

May import: ``checks``, ``planner``, ``inference``, ``request``, ``spec``, ``catalog``, ``errors``. Never AWS.
"""
