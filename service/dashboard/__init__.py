"""The dashboard: one static page over the JSON API, shipped inside the package.

No build step and no external asset: the HTML, ES modules and CSS under
``static/`` are served as they are. The page holds no data of its own; it reads
the API with the key a person types in (see ``static/api.js``)."""

from service.dashboard.routes import STATIC_DIR, dashboard_route_handlers

__all__ = ["STATIC_DIR", "dashboard_route_handlers"]
