"""The REST service: on-demand generation over HTTP, on the library entry point `generator.run.run`.

    python -m serve                      # FastAPI on uvicorn, 127.0.0.1:8000, the embedded teacher
    python -m serve --ray-address auto   # the same app as a Ray Serve deployment on a cluster

settings.py (what the server decides) · bodies.py (what a request may set) · jobs.py (the SQLite
store) · executor.py (the queue; every job is one `run()` on the one shared teacher) · rows.py
(the rows a job has streamed so far) · auth.py · metrics.py · app.py (routes) · deployment.py (Ray Serve)
"""
