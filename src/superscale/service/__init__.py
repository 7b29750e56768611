"""The web workbench and HTTP API: thin over the library, as `cli/` is (extra `[web]`).

`create_app(settings)` builds the FastAPI app: one endpoint per CLI verb calling the same
library function, request bodies that are the library's specs, work capped per request,
long searches as cancellable jobs, and the page (`static/`) that draws the results.
`superscale web` serves it.
"""

from superscale.service.app import create_app
from superscale.service.settings import Settings

__all__ = ["Settings", "create_app"]
