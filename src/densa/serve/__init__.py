"""Serving stage (``pip install 'densa[serve]'``): HTTP API and search page."""

from densa.serve.config import ServeConfig, is_loopback, with_pipeline

__all__ = ["ServeConfig", "create_app", "is_loopback", "with_pipeline"]


def __getattr__(name: str) -> object:
    # create_app imports FastAPI; keep `import densa.serve` light and error-free without it.
    if name == "create_app":
        from densa.serve.app import create_app

        return create_app
    raise AttributeError(name)
