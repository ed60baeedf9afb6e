"""inference: a spec with an ``inference`` section runs a trained model over a data set, data-parallel.

Lives here: ``section`` (the section expanded into ordinary job fields, its rules, local record counts),
``batch_transform`` (the Batch Transform backend: spec -> CreateModel + CreateTransformJob requests, pure, and
its rules).

May import: ``request``, ``spec``, ``catalog``, ``errors``. Submitting is ``aws``'s job.
"""
