# The chat API. compose.yaml runs it beside vLLM (specialists) and PostgreSQL (transcripts).
#   docker build -t understudy .   then   docker compose up -d
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UNDERSTUDY_HOME=/understudy

# bubblewrap: the OS sandbox run_python's snippets run in. It needs user namespaces, which
# Docker's default seccomp and AppArmor profiles refuse: compose.yaml's security_opt allows them
# (README, "The code sandbox"). `understudy doctor` in the container says whether it works.
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY . /app
# The base install: with UNDERSTUDY_SLM_BACKEND=vllm the specialists run in the vllm service, so
# no torch is needed here. For the embedding pre-router (and the local backend) install the
# extra from the CPU wheel index instead, e.g.
#   pip install ".[local]" --extra-index-url https://download.pytorch.org/whl/cpu
RUN pip install . \
    && useradd --create-home --uid 1000 understudy \
    && mkdir -p /understudy/adapters \
    && chown -R understudy:understudy /understudy

USER understudy
EXPOSE 8080
CMD ["understudy", "serve", "--host", "0.0.0.0", "--port", "8080"]
