"""One router per resource; :func:`core.faces.api.app.create_app` includes them in this order."""
from core.faces.api.routers import datasets, explain, jobs, methods, models, predict, runs, service

ROUTERS = (service.router, models.router, methods.router, datasets.router, predict.router, explain.router,
           jobs.router, runs.router)

__all__ = ["ROUTERS"]
