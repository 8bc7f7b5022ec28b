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
# Compile the CPU render loops (numba, factory/render/loops.py) into the package's cache, so CPU workers on nodes with
# the build machine's CPU skip the first render's ~7 s of compiling (another CPU compiles once on first use).
RUN factory render-identity --image-size 32 --texture-size 64 --out /tmp/warm-up && rm -rf /tmp/warm-up

# Optional: bake the diffusion models (--texturer diffusion, --background inpaint) into the image, about 10 GB:
#   docker build --build-arg FETCH_MODELS=1 -t <registry>/painfactory:0.1.0-diffusion .
# FETCH_MODELS_ARGS picks other models, e.g. "--only texture" or "--texture <id> --controlnet <id>" (factory fetch-models
# --help). Without it, mount a shared Hugging Face cache at HF_HOME instead (README: the diffusion path on a GPU cluster).
ARG FETCH_MODELS=0
ARG FETCH_MODELS_ARGS=""
ENV HF_HOME=/home/ray/huggingface
RUN if [ "$FETCH_MODELS" = "1" ]; then factory fetch-models $FETCH_MODELS_ARGS; fi

ENV PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1
