"""`superscale web`: serve the workbench page and the HTTP API (`superscale.service`).

FastAPI and uvicorn come with the `[web]` extra and are imported only when this verb runs,
so the rest of the CLI works on the core install. The caps are the service's `Settings`;
each has a flag here, named in the 4xx a request over it receives.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from superscale.cli.app import app, err_console
from superscale.errors import SpecError

_MISSING = "superscale web needs the [web] extra: pip install 'superscale[web]'"


@app.command()
def web(
    host: Annotated[
        str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    backend: Annotated[
        str, typer.Option(help="Search sweeps: local (in the job's thread) or ray.")
    ] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (with --backend ray).")
    ] = None,
    max_gpus: Annotated[int, typer.Option(min=1, help="Most GPUs in any cluster.")] = 32_768,
    max_plans: Annotated[
        int, typer.Option(min=1, help="Most candidate plans one search may enumerate.")
    ] = 300_000,
    max_requests: Annotated[
        int, typer.Option(min=100, help="Most requests one serving simulation may draw.")
    ] = 20_000,
    max_spans: Annotated[
        int, typer.Option(min=1, help="Most spans (and event-engine tasks) per simulation.")
    ] = 200_000,
    max_top: Annotated[int, typer.Option(min=1, help="Most top plans one search returns.")] = 50,
    max_body_bytes: Annotated[
        int, typer.Option(min=1024, help="Largest request body, bytes.")
    ] = 1_000_000,
    workers: Annotated[int, typer.Option(min=1, help="Jobs (searches) running at once.")] = 2,
    queue_limit: Annotated[
        int, typer.Option(min=0, help="Jobs waiting beyond those running before a 429.")
    ] = 8,
    job_timeout: Annotated[
        float, typer.Option(min=1.0, help="Seconds a job may run before it is cancelled.")
    ] = 120.0,
) -> None:
    """Serve the web workbench and the HTTP API on HOST:PORT.

    Example: [bold]superscale web[/]  then open http://127.0.0.1:8000/
    or [bold]superscale web --port 9000 --max-plans 1000000 --backend ray[/]

    The page (bundled, works offline) picks a model, a cluster, a workload and a plan or
    "find the best plan", and draws the step, memory, placement, timeline, Pareto front,
    cluster comparison and serving percentiles. The API (/api/..., schema at /openapi.json) takes
    the same scenarios as the CLI, inline: no request names a file on the server.
    """
    try:
        import uvicorn

        from superscale.service import Settings, create_app
    except ImportError:
        err_console.print(f"[bold red]error:[/] {escape(_MISSING)}")
        raise typer.Exit(2) from None
    if backend not in ("local", "ray"):
        raise SpecError(f"--backend: unknown backend '{backend}' (allowed: local, ray)")
    settings = Settings(
        host=host,
        port=port,
        backend=backend,
        ray_address=address,
        max_gpus=max_gpus,
        max_plans=max_plans,
        max_requests=max_requests,
        max_spans=max_spans,
        max_top=max_top,
        max_body_bytes=max_body_bytes,
        job_workers=workers,
        queue_limit=queue_limit,
        job_timeout_s=job_timeout,
    )
    err_console.print(
        f"superscale web on http://{host}:{port}/  (API schema: /openapi.json; Ctrl-C stops)"
    )
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
