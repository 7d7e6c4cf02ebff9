"""benchbed: a plugin-based benchmark suite for latent-variable deep generative models.

The package root exports the one pluggy marker plugin authors need (``hookimpl``) and the spec
classes they register.  Everything else lives in small modules named after one concept each.
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: pluggy project name and the entry-point group third-party plugins register under.
PROJECT_NAME = "benchbed"

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

from benchbed.specs import DatasetSpec, MetricSpec, ModelSpec, SamplerSpec  # noqa: E402

__all__ = [
    "PROJECT_NAME",
    "DatasetSpec",
    "MetricSpec",
    "ModelSpec",
    "SamplerSpec",
    "__version__",
    "hookimpl",
]
