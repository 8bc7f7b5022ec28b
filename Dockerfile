# painfactory image for GPU pools: the same image runs the Ray head, the generator actors and the trainer workers
# (Ray cluster launcher: cluster.yaml; Kubernetes: deploy/).
#
#   docker build -t <registry>/painfactory:0.1.0 .
#
# The Ray base image must carry the same Ray release as pyproject.toml pins (clients and clusters must match).
# torch's wheels bring their own CUDA 13 runtime, so the host needs an NVIDIA driver >= 580 and nothing else.
FROM rayproject/ray:2.60.0-py311-gpu

WORKDIR /home/ray/painfactory
COPY --chown=ray:users pyproject.toml README.md ./
COPY --chown=ray:users factory ./factory
COPY --chown=ray:users trainer ./trainer
RUN pip install --no-cache-dir . \
 && python -c "import factory, trainer, pytorch3d, torch; print('painfactory image: torch', torch.__version__)"

ENV PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1
