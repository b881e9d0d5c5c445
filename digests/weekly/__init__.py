"""The weekly organization digest: one email per member per org per ISO week, summarizing
what was created or launched in their teams the week before. See ``README.md`` here for
the data flow, the Redis keys and how to add a section.

Tasks are in :mod:`digests.weekly.tasks` (import it from ``digests.apps`` so workers
register them); the beat entry is ``digests.weekly.tasks.PERIODIC``.
"""
