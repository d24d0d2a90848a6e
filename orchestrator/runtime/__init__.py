"""Ray's processes: starting or attaching to Ray, the persistent head, auth, the compat shim.

Entry points: ``ray_session.start_ray`` / ``on_this_ray`` / ``exit_without_teardown``,
``ray_start.BackgroundRay`` (Ray started beside the data checks), ``head.Head``
(``python -m orchestrator.cluster``), ``ray_auth`` (the token), ``ray_compat`` (the one
shim past Ray's public API; fenced). The place a Ray upgrade touches first.
"""
