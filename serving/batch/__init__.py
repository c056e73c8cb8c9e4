"""Batch jobs: OpenAI Batch-format files run through the orchestrator, durably, by any number of
workers.

- :mod:`serving.batch.validation` reads an input file line by line, checks every line and
  stores the requests as rows in chunks (nothing runs when a line is bad, unless told to skip);
- :mod:`serving.batch.runner` runs one item: attempts with backoff, transcripts reused after a
  crash instead of run again;
- :mod:`serving.batch.worker` claims items and keeps ``concurrency`` of them running;
- :mod:`serving.batch.limiter` keeps every worker together within the lead provider's limits;
- :mod:`serving.batch.output` writes OpenAI's batch output and error lines, and the files.
"""
