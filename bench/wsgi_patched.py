"""``config.wsgi`` with the proposed fixes of ``bench.patches`` applied (ingest
``--fast-encode``)."""

from bench import patches
from config.wsgi import application  # noqa: F401  (sets Django up)

patches.apply()
